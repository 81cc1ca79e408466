"""A server-sent events response that notices a departed client at once.

Unlike a plain `StreamingResponse`, it always listens for `http.disconnect` while it
streams (whatever ASGI spec version the server speaks), sends a comment when the source
has been quiet for `heartbeat` seconds, and stops when the app shuts down. Whatever way
it ends, the source iterator is closed and `on_close` runs, so upstream calls never leak.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each message on as it comes
    "Connection": "keep-alive",
}


@dataclass(frozen=True)
class Message:
    """One SSE message: `id:` and `data:` only, so `EventSource.onmessage` receives it."""

    id: int
    data: Mapping[str, Any]

    def encode(self) -> bytes:
        body = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        return f"id: {self.id}\ndata: {body}\n\n".encode()


HEARTBEAT = b": keep-alive\n\n"


class EventSourceResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        messages: AsyncIterator[Message],
        *,
        heartbeat: float,
        retry_ms: int,
        closing: asyncio.Event,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self.messages = messages
        self.heartbeat = heartbeat
        self.retry_ms = retry_ms
        self.closing = closing
        self.on_close = on_close
        self.status_code = 200
        self.background = None
        self._open = False  # headers sent, body not ended
        self.init_headers(HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = asyncio.create_task(self._stream(send), name="sse-stream")
        gone = asyncio.create_task(_disconnected(receive), name="sse-disconnect")
        closing = asyncio.create_task(self.closing.wait(), name="sse-closing")
        tasks = (stream, gone, closing)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.on_close is not None:
                self.on_close()
        if not stream.cancelled() and stream.exception() is not None:
            raise stream.exception()  # type: ignore[misc]
        if closing.done() and not closing.cancelled() and self._open:
            # Shutting down: end the body cleanly so EventSource reconnects, not errors.
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        self._open = True
        await _body(send, f"retry: {self.retry_ms}\n\n".encode())
        pending: asyncio.Task[Message] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.create_task(_next(self.messages))
                # Waiting without cancelling: a quiet source keeps its pending read.
                done, _ = await asyncio.wait({pending}, timeout=self.heartbeat)
                if not done:
                    await _body(send, HEARTBEAT)
                    continue
                finished, pending = pending, None
                try:
                    message = finished.result()
                except StopAsyncIteration:
                    break
                await _body(send, message.encode())
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            await self.messages.aclose()  # type: ignore[attr-defined]
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._open = False


async def _next(messages: AsyncIterator[Message]) -> Message:
    return await anext(messages)


async def _body(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
