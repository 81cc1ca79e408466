"""Serving the bridge with uvicorn, beside the gRPC server (`octavia serve`) or alone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

from server.metrics import Metrics
from server.settings import Settings
from server.tracing import Tracing

from . import logs
from .app import create_app

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5
"""Seconds open requests get to finish once the bridge is asked to stop."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals belong to whoever runs the process; they stop us through `stop_event`.
        yield


@contextlib.asynccontextmanager
async def serve_asgi(
    app: ASGIApp, host: str, port: int, *, on_stop: Callable[[], object] | None = None
) -> AsyncIterator[int]:
    """Serve `app` with uvicorn on `host:port` while the block runs; yields the real port.

    The bridge and `bench/events.py`'s bare endpoint both go through here, so a comparison
    between them measures the app, not the socket set-up. `on_stop` runs when the block
    ends, before uvicorn drains (the bridge ends its open streams there)."""
    config = uvicorn.Config(
        app,
        log_config=None,  # our root handlers: JSON when configured, secrets masked
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        server_header=False,
    )
    # Bound here rather than by uvicorn, whose bind failure exits the whole process.
    sock = _bind(host, port)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped while starting")
            await asyncio.sleep(0.01)
        real_port: int = sock.getsockname()[1]
        yield real_port
    finally:
        server.should_exit = True
        if on_stop is not None:
            on_stop()
        try:
            await task
        finally:
            sock.close()


@contextlib.asynccontextmanager
async def bridge_server(
    settings: Settings,
    grpc_address: str,
    *,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
) -> AsyncIterator[int]:
    """Serve the bridge on `http_host:http_port` while the block runs; yields the port."""
    app = create_app(settings, settings.grpc_target or grpc_address, metrics=metrics,
                     tracing=tracing)
    logs.install()
    async with serve_asgi(app, settings.http_host, settings.http_port,
                          on_stop=app.state.feeds.close) as port:
        log.info("bridge listening on http://%s:%d (gRPC %s)", settings.http_host, port,
                 app.state.grpc_target)
        yield port


async def run_bridge(
    settings: Settings,
    grpc_address: str,
    stop_event: asyncio.Event,
    *,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
) -> None:
    """Serve the bridge until `stop_event` is set, talking gRPC to `grpc_address`
    (or `settings.grpc_target` when set)."""
    async with bridge_server(settings, grpc_address, metrics=metrics, tracing=tracing):
        await stop_event.wait()


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose accepted connections get TCP_NODELAY.

    The protocol must be IPPROTO_TCP, not 0 as `socket.create_server` leaves it: asyncio
    sets TCP_NODELAY on an accepted socket only when its `proto` says TCP. Without it,
    Nagle holds back uvicorn's second write of a response (headers and body are two
    writes) until the client ACKs the first, and Linux delays that ACK by ~40 ms: every
    keep-alive request took ~44 ms on loopback instead of ~0.3 ms, and SSE messages sent
    close together waited the same way.
    """
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
