"""Wrapping a gRPC method handler's behaviour, whatever its shape, in a context manager.

Interceptors use it to run code around every call (auth and error mapping, telemetry)
without knowing whether the RPC is unary or server-streaming.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc
from grpc import aio

# Builds the context the call's behaviour runs inside, from the request and the context.
Around = Callable[[Any, aio.ServicerContext[Any, Any]], AbstractAsyncContextManager[None]]


def wrap_handler(handler: Any, around: Around) -> Any:
    """A copy of `handler` whose behaviour runs inside `around(request, context)`."""
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            async with around(request, context):
                return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        stream = handler.unary_stream

        async def unary_stream(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            async with around(request, context):
                async for item in stream(request, context):
                    yield item

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer
        )
    return handler  # client-streaming shapes: none in this service
