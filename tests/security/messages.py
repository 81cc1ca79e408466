"""Hypothesis strategies for any protobuf message, built from its descriptor, so every
RPC's request (those added later too) can be fuzzed field by field."""

from __future__ import annotations

from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.security import fuzz

F = FieldDescriptor
_INTS: dict[int, st.SearchStrategy[int]] = {
    F.TYPE_INT32: fuzz.int32, F.TYPE_SINT32: fuzz.int32, F.TYPE_SFIXED32: fuzz.int32,
    F.TYPE_INT64: fuzz.int64, F.TYPE_SINT64: fuzz.int64, F.TYPE_SFIXED64: fuzz.int64,
    F.TYPE_UINT32: st.integers(0, 2**32 - 1), F.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    F.TYPE_UINT64: st.integers(0, 2**64 - 1), F.TYPE_FIXED64: st.integers(0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor, strings: dict[str, st.SearchStrategy[str]]
            ) -> st.SearchStrategy[Any]:
    if field.type in _INTS:
        return st.one_of(st.sampled_from([0, 1, -1]).filter(lambda v: v >= 0 or field.type
                                                             not in (F.TYPE_UINT32,
                                                                     F.TYPE_FIXED32,
                                                                     F.TYPE_UINT64,
                                                                     F.TYPE_FIXED64)),
                         _INTS[field.type])
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type == F.TYPE_FLOAT:
        return st.floats(width=32)
    if field.type == F.TYPE_DOUBLE:
        return st.floats()
    if field.type == F.TYPE_STRING:
        return strings.get(field.name, st.one_of(st.text(max_size=40), fuzz.weird_text))
    if field.type == F.TYPE_BYTES:
        return st.binary(max_size=512)
    if field.type == F.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(known), fuzz.int32)
    raise TypeError(field.type)


def messages(descriptor: Descriptor, strings: dict[str, st.SearchStrategy[str]],
             depth: int = 0) -> st.SearchStrategy[Message]:
    """Requests of this type with any subset of fields set to hostile values; `strings`
    gives the strategy of string fields by name (e.g. `job_id`)."""
    cls = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == F.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                key, value = field.message_type.fields
                if value.type == F.TYPE_MESSAGE:
                    continue
                fields[field.name] = st.dictionaries(_scalar(key, strings),
                                                     _scalar(value, strings), max_size=3)
                continue
            if depth >= 3:
                continue
            single = messages(field.message_type, strings, depth + 1)
        else:
            single = _scalar(field, strings)
        repeated = field.is_repeated
        fields[field.name] = st.lists(single, max_size=4) if repeated else single

    def build(values: dict[str, Any]) -> Message:
        message = cls()
        for name, value in values.items():
            field = descriptor.fields_by_name[name]
            target = getattr(message, name) if field.type == F.TYPE_MESSAGE or (
                field.is_repeated) else None
            if isinstance(value, dict):
                target.update(value)  # type: ignore[union-attr]
            elif isinstance(value, list):
                target.extend(value)  # type: ignore[union-attr]
            elif isinstance(value, Message):
                target.CopyFrom(value)  # type: ignore[union-attr]
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries({}, optional=fields).map(build)
