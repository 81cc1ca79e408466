"""Cross-cutting RPC behaviour: authentication, and mapping errors to gRPC statuses.

Both wrap the handler's behaviour (unary or server-streaming) instead of the servicer,
so every RPC gets them and handlers stay thin. Health and reflection are public.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio
from octavia.errors import Internal, OctaviaError

from .auth import TokenAuthority
from .principal import set_principal

log = logging.getLogger(__name__)

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# Runs before the behaviour; may abort the call.
Guard = Callable[[aio.ServicerContext[Any, Any]], Awaitable[None]]


def _wrap(handler: grpc.RpcMethodHandler, guard: Guard) -> grpc.RpcMethodHandler:
    """A copy of `handler` whose behaviour runs `guard` first and maps errors to statuses."""
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            await guard(context)
            try:
                return await unary(request, context)
            except OctaviaError as error:
                await context.abort_with_status(error.to_status())
            except aio.AbortError:
                raise
            except Exception as error:
                await _internal(context, error)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        stream = handler.unary_stream

        async def unary_stream(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await guard(context)
            try:
                async for item in stream(request, context):
                    yield item
            except OctaviaError as error:
                await context.abort_with_status(error.to_status())
            except aio.AbortError:
                raise
            except Exception as error:
                await _internal(context, error)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer
        )
    return handler  # client-streaming shapes: none in this service


async def _internal(context: aio.ServicerContext[Any, Any], error: Exception) -> None:
    log.exception("unhandled error in RPC", exc_info=error)
    await context.abort_with_status(Internal("internal server error").to_status())


class AuthInterceptor(aio.ServerInterceptor):
    """Checks the bearer token of every non-public RPC and records its subject."""

    def __init__(self, tokens: TokenAuthority) -> None:
        self._tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler
        return _wrap(handler, self._authenticate)

    async def _authenticate(self, context: aio.ServicerContext[Any, Any]) -> None:
        metadata = dict(context.invocation_metadata() or ())
        try:
            principal = self._tokens.verify_header(metadata.get("authorization"))
        except OctaviaError as error:
            await context.abort_with_status(error.to_status())
            return
        set_principal(principal)
