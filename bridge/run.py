"""Serving the bridge with uvicorn, beside the gRPC server (`octavia serve`) or alone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn

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
    config = uvicorn.Config(
        app,
        log_config=None,  # our root handlers: JSON when configured, secrets masked
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        server_header=False,
    )
    logs.install()
    # Bound here rather than by uvicorn, whose bind failure exits the whole process.
    sock = _bind(settings.http_host, settings.http_port)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="bridge-uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the bridge stopped while starting")
            await asyncio.sleep(0.01)
        port: int = sock.getsockname()[1]
        log.info("bridge listening on http://%s:%d (gRPC %s)", settings.http_host, port,
                 app.state.grpc_target)
        yield port
    finally:
        server.should_exit = True
        app.state.closing.set()
        try:
            await task
        finally:
            sock.close()


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
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, reuse_port=False)
    sock.set_inheritable(True)
    return sock
