"""The outermost interceptor: per-RPC metrics, a server span, and the log context.

First in the interceptor list, so it also sees calls that authentication refuses
(UNAUTHENTICATED) and the status every other layer chose. Each call gets a `request_id`
(the caller's `x-request-id` metadata, else a fresh one), logged on every line it causes;
a `traceparent` in the metadata continues the caller's trace.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import grpc
from grpc import aio
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import logs, tracing
from ._handlers import wrap_handler
from .metrics import Metrics
from .tracing import Tracing

REQUEST_ID = "x-request-id"


class TelemetryInterceptor(aio.ServerInterceptor):
    def __init__(self, metrics: Metrics | None, tracing_: Tracing) -> None:
        self._metrics = metrics
        self._tracing = tracing_

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = str(handler_call_details.method).lstrip("/")
        metadata = tuple(handler_call_details.invocation_metadata or ())
        return self._wrap(handler, method, metadata)

    def _wrap(self, handler: Any, method: str, metadata: tuple[Any, ...]) -> Any:
        @asynccontextmanager
        async def around(request: Any, context: aio.ServicerContext[Any, Any]
                         ) -> AsyncIterator[None]:
            with self._observe(method, metadata, request, context):
                yield

        return wrap_handler(handler, around)

    @contextmanager
    def _observe(
        self,
        method: str,
        metadata: tuple[Any, ...],
        request: Any,
        context: aio.ServicerContext[Any, Any],
    ) -> Iterator[None]:
        headers = {key: value for key, value in metadata if isinstance(value, str)}
        request_id = headers.get(REQUEST_ID) or uuid.uuid4().hex[:16]
        job_id = getattr(request, "job_id", None) or None
        span = self._tracing.tracer.start_span(
            method,
            context=tracing.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.method": method,
                        "octavia.request_id": request_id},
        )
        if job_id:
            span.set_attribute("octavia.job_id", job_id)
        started = time.perf_counter()
        code = "OK"
        try:
            with logs.bind(request_id=request_id, job_id=job_id), \
                    trace.use_span(span, end_on_exit=False, record_exception=False,
                                   set_status_on_exception=False):
                yield
            code = _code(context, "OK")
        except aio.AbortError:
            code = _code(context, "UNKNOWN")
            raise
        except asyncio.CancelledError:  # the client went away, or the server stops
            code = "CANCELLED"
            raise
        except BaseException:
            code = _code(context, "UNKNOWN")
            raise
        finally:
            span.set_attribute("rpc.grpc.status_code", code)
            if code != "OK":
                span.set_status(Status(StatusCode.ERROR, code))
            span.end()
            if self._metrics is not None:
                self._metrics.rpc_requests.labels(method, code).inc()
                self._metrics.rpc_seconds.labels(method).observe(time.perf_counter() - started)


def _code(context: aio.ServicerContext[Any, Any], default: str) -> str:
    try:
        code = context.code()
    except Exception:  # older grpcio: no code() on the aio context
        return default
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int):  # some grpcio versions hand back the raw number
        return _by_value(code, default)
    return default


def _by_value(value: int, default: str) -> str:
    for status in grpc.StatusCode:
        if status.value[0] == value:
            return str(status.name)
    return default
