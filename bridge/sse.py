"""A server-sent events response for one client's `Watcher`.

The messages are encoded once per update for all clients of a job by the job's feed, and
written in turns by the bridge's write queue (both in `_fanout`), not by this response:
it sends the headers and the `retry:` hint, hands its `send` to the watcher, then only
waits on `receive` for the client to leave, which it notices at once (whatever ASGI spec
version the server speaks). Once the watcher has ended the body (the terminal update, the
upstream call gone, the bridge stopping), the server answers `receive` with
`http.disconnect` as well, and the response returns.
Heartbeat comments come from the feed when the job is quiet. Whatever way it ends,
`on_close` runs, so the client's place in the feed is given back.

Per client that is the request's own task and a few small objects: no second task, no
timer, no upstream call, no JSON.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._fanout import Watcher

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each message on as it comes
    "Connection": "keep-alive",
}


class EventSourceResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        watcher: Watcher,
        *,
        retry_ms: int,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self.watcher = watcher
        self.retry_ms = retry_ms
        self.on_close = on_close
        self.status_code = 200
        self.background = None
        self.init_headers(HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = self.watcher
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            await watcher.attach(send, f"retry: {self.retry_ms}\n\n".encode())
            while not watcher.complete and not watcher.gone:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break
        finally:
            if not watcher.complete:
                watcher.stop()  # the client left (or this task was cancelled)
            if self.on_close is not None:
                self.on_close()
