"""Calling every JobService RPC and every bridge endpoint generically, so RPCs and
routes added later are covered by the same tables without editing them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from grpc import aio
from octavia.errors import OctaviaError, from_rpc_error
from octavia.v1 import jobs_pb2
from starlette.applications import Starlette
from starlette.routing import Route

SERVICE = jobs_pb2.DESCRIPTOR.services_by_name["JobService"]
Metadata = Sequence[tuple[str, str]]

PUBLIC_ROUTES = {("DELETE", "/api/v1/session")}
"""Routes under /api that need no credentials: logging out only clears a cookie."""


def methods() -> list[MethodDescriptor]:
    return list(SERVICE.methods)


def request_for(method: MethodDescriptor, **fields: Any) -> Message:
    """A request of the method's type with those of `fields` the type has."""
    cls = message_factory.GetMessageClass(method.input_type)
    names = {field.name for field in method.input_type.fields}
    return cls(**{k: v for k, v in fields.items() if k in names})


async def invoke(
    channel: aio.Channel, method: MethodDescriptor, request: Message, metadata: Metadata,
    deadline: float | None = None,
) -> list[Message]:
    """Every response message of the call (one for a unary RPC), within `deadline`
    seconds when given."""
    path = f"/{SERVICE.full_name}/{method.name}"
    response = message_factory.GetMessageClass(method.output_type)
    serialize, parse = type(request).SerializeToString, response.FromString
    options: dict[str, Any] = {"metadata": metadata, "timeout": deadline}
    if method.client_streaming:
        if method.server_streaming:
            stream = channel.stream_stream(path, serialize, parse)(iter([request]), **options)
            return [m async for m in stream]
        return [await channel.stream_unary(path, serialize, parse)(iter([request]), **options)]
    if method.server_streaming:
        call = channel.unary_stream(path, serialize, parse)(request, **options)
        return [m async for m in call]
    return [await channel.unary_unary(path, serialize, parse)(request, **options)]


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    details: str
    error: OctaviaError


async def refused(
    channel: aio.Channel, method: MethodDescriptor, request: Message, metadata: Metadata
) -> Refusal:
    try:
        await invoke(channel, method, request, metadata)
    except aio.AioRpcError as error:
        return Refusal(error.code(), error.details() or "", from_rpc_error(error))
    raise AssertionError(f"{method.name} accepted the call")


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str

    def url(self, job_id: str, name: str = "dubbed.wav") -> str:
        return self.template.replace("{job_id}", job_id).replace("{name}", name)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def endpoints(app: Starlette, *, with_job: bool | None = None) -> Iterator[Endpoint]:
    """Every authenticated /api route of the bridge (`with_job`: only those naming a job,
    or only those that do not)."""
    for route in app.routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            if (method, route.path) in PUBLIC_ROUTES:
                continue
            if with_job is not None and ("{job_id}" in route.path) != with_job:
                continue
            yield Endpoint(method, route.path)


def some_job_id() -> str:
    return str(uuid.uuid4())
