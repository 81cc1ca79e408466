"""Cross-cutting RPC behaviour: authentication, and mapping errors to gRPC statuses.

Both wrap the handler's behaviour (unary or server-streaming) instead of the servicer,
so every RPC gets them and handlers stay thin. Health and reflection are public.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio
from octavia.errors import Internal, InvalidArgument, OctaviaError, Unauthenticated

from ._handlers import Around, wrap_handler
from .auth import TokenAuthority
from .faults import as_octavia_error
from .principal import set_principal

log = logging.getLogger(__name__)

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# Runs before the behaviour; may abort the call.
Guard = Callable[[aio.ServicerContext[Any, Any]], Awaitable[None]]


def _guarded(guard: Guard) -> Around:
    """Runs `guard` first, then maps the behaviour's errors to statuses in one place."""

    @asynccontextmanager
    async def around(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        await guard(context)
        if isinstance(request, Undecodable):  # told only to callers who may call
            await context.abort_with_status(InvalidArgument(request.message).to_status())
        try:
            yield
        except OctaviaError as error:
            await context.abort_with_status(error.to_status())
        except aio.AbortError:
            raise
        except NotImplementedError:  # the generated servicer's default for an RPC we lack
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this RPC is not implemented")
        except Exception as error:
            if (mapped := as_octavia_error(error)) is not None:  # the machine, not a bug
                log.warning("RPC failed: %s (%s)", mapped.message, type(error).__name__)
                await context.abort_with_status(mapped.to_status())
            await _internal(context, error)

    return around


async def _internal(context: aio.ServicerContext[Any, Any], error: Exception) -> None:
    log.exception("unhandled error in RPC", exc_info=error)
    await context.abort_with_status(Internal("internal server error").to_status())


class Undecodable:
    """Stands for a request whose bytes do not parse (say, a string that is not UTF-8), so
    the caller gets INVALID_ARGUMENT (after authentication) instead of UNKNOWN."""

    def __init__(self, error: DecodeError) -> None:
        self.message = f"malformed request: {error}"


def _tolerant(parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if parse is None:
        return None

    def tolerant(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as error:
            return Undecodable(error)

    return tolerant


class AuthInterceptor(aio.ServerInterceptor):
    """Checks the bearer token of every non-public RPC and records its subject."""

    def __init__(self, tokens: TokenAuthority) -> None:
        self._tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method = str(handler_call_details.method)
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler
        tolerant = handler._replace(request_deserializer=_tolerant(handler.request_deserializer))
        return wrap_handler(tolerant, _guarded(self._authenticate))

    async def _authenticate(self, context: aio.ServicerContext[Any, Any]) -> None:
        values = [value for key, value in context.invocation_metadata() or ()
                  if key == "authorization"]
        value = values[0] if values else None
        header = value.decode("latin-1") if isinstance(value, bytes) else value
        try:
            if len(values) > 1:  # a proxy may have checked one, and we would use another
                raise Unauthenticated("send exactly one 'authorization' header")
            principal = self._tokens.verify_header(header)
        except OctaviaError as error:
            await context.abort_with_status(error.to_status())
            return
        set_principal(principal)
