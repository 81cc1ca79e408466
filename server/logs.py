"""Logging: readable text by default, one JSON object a line when asked, never a secret.

Every record about a job carries `job_id`, `user`, `phase` and `request_id`, taken from
context variables that the RPC interceptor and the job executor bind (`bind(...)`), so
call sites log as usual. `configure_logging(settings)` is called once by each entry point.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings

FIELDS = ("job_id", "user", "phase", "request_id")
_vars: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"octavia_log_{name}", default=None) for name in FIELDS
}

MASK = "***"
_SECRETS = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {MASK}"),
    (re.compile(r"(?i)\b(ticket|token|access_token|jwt|secret|password)=[^&\s\"',;]+"),
     rf"\1={MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
)


def redact(text: str) -> str:
    """`text` with bearer tokens, `ticket=`/`token=` values and JWT-looking strings masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


@contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Attach fields (`job_id`, `user`, `phase`, `request_id`) to every record logged in
    this context (and in threads/tasks started from it) until the block ends."""
    tokens = [(_vars[name], _vars[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            # A streaming handler whose client went away is closed from another context
            # (grpc's GeneratorExit); that context never saw these values.
            with contextlib.suppress(ValueError):
                var.reset(token)


def set_field(name: str, value: str | None) -> None:
    """Set one field for the rest of the current context (e.g. the phase, as it changes)."""
    _vars[name].set(value)


def current_fields() -> dict[str, str]:
    fields = {name: value for name, var in _vars.items() if (value := var.get()) is not None}
    if "user" not in fields:
        user = _principal_subject()
        if user is not None:
            fields["user"] = user
    return fields


def _principal_subject() -> str | None:
    from .principal import _current  # the RPC's caller, once the auth interceptor ran

    principal = _current.get(None)
    return principal.subject if principal is not None else None


class ContextFilter(logging.Filter):
    """Copies the bound fields (and the trace id, when tracing) onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = current_fields()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, fields.get(name))
        if not hasattr(record, "trace_id"):
            record.trace_id = _trace_id()
        return True


class RedactFilter(logging.Filter):
    """Masks secrets in the message before the handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Masking the formatted message: a secret may sit in the format or in an argument,
        # and masking the format alone could break its placeholders.
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's error path
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, the job fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*FIELDS, "trace_id"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [job_id=… user=… phase=…]`, secrets masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(
            f"{name}={value}" for name in FIELDS
            if (value := getattr(record, name, None)) is not None
        )
        return redact(f"{text} [{context}]" if context else text)


def make_handler(log_format: str = "text", stream: Any = None) -> logging.Handler:
    """A stream handler with Octavia's formatter and filters (also used by tests)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    add_filters(handler)
    handler._octavia = True  # type: ignore[attr-defined]
    return handler


def add_filters(handler: logging.Handler) -> None:
    """Give a handler the context and redaction filters (once)."""
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())
    if not any(isinstance(f, RedactFilter) for f in handler.filters):
        handler.addFilter(RedactFilter())


def configure_logging(settings: Settings) -> None:
    """Set up the root logger from `log_format` and `log_level`; safe to call again.

    JSON replaces the console handlers (one object a line on stderr). Text keeps a console
    handler the caller installed (the CLI's) and only adds one when there is none. Every
    root handler gets the context and redaction filters.
    """
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        console = getattr(handler, "_octavia", False) or _is_console(handler)
        if console and (settings.log_format == "json" or getattr(handler, "_octavia", False)):
            root.removeHandler(handler)
    if settings.log_format == "json" or not any(_is_console(h) for h in root.handlers):
        root.addHandler(make_handler(settings.log_format))
    for handler in root.handlers:
        add_filters(handler)


def _is_console(handler: logging.Handler) -> bool:
    if type(handler).__name__ == "RichHandler":
        return True
    stream = getattr(handler, "stream", None)
    return isinstance(handler, logging.StreamHandler) and stream in (sys.stderr, sys.stdout)


def _trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - tracing is optional
        return None
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None
