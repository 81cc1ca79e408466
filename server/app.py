"""Assembling and running the service: store → runner → gRPC server (+ the bridge)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Any

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from octavia.v1 import jobs_pb2, jobs_pb2_grpc

from ._metrics_refresh import refresh_forever
from .artifacts import ArtifactStore
from .auth import TokenAuthority
from .distributed.dispatcher import QueueDispatcher
from .distributed.relay import EventRelay
from .distributed.worker import Worker
from .engine import Engine
from .engine.loading import load_engine
from .events import EventBus
from .health import HealthMonitor
from .interceptors import AuthInterceptor
from .logs import configure_logging
from .metrics import Metrics, MetricsServer
from .rpc_telemetry import TelemetryInterceptor
from .runner import Dispatcher, JobRunner
from .service import JobService
from .settings import Settings
from .store import JobStore
from .tracing import Tracing
from .webhooks import WebhookRecorder, WebhookSender

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)


class OctaviaServer:
    """The running service. `start()` migrates, recovers and listens; `stop()` undoes it.

    `metrics` and `tracer_provider` default to ones built from the settings (a provider
    given here is used even with `tracing` off: tests pass one with an in-memory exporter).
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        *,
        metrics: Metrics | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = metrics if metrics is not None else Metrics()
        self.tracing = (Tracing(tracer_provider) if tracer_provider is not None
                        else Tracing.from_settings(settings))
        self.metrics_server: MetricsServer | None = None
        self._metrics_task: asyncio.Task[None] | None = None
        self.tokens = TokenAuthority(settings)
        self.store = JobStore(settings.database_url_resolved)
        # Deliveries are written with their events; this process's sender is woken by its own.
        self.webhooks = WebhookSender(settings, self.store)
        self.store.on_event = WebhookRecorder(settings, on_commit=self.webhooks.wake)
        self.bus = EventBus(self.metrics, settings.watch_buffer)
        self.artifacts = ArtifactStore(settings.artifacts_url_resolved, settings.artifacts_options)
        self.dispatcher: Dispatcher
        self.relay: EventRelay | None = None
        self.worker: Worker | None = None
        if settings.queue == "procrastinate":
            if not self.store.notifies:
                raise ValueError("OCTAVIA_QUEUE=procrastinate needs a PostgreSQL "
                                 "OCTAVIA_DATABASE_URL")
            self.dispatcher = QueueDispatcher(settings, self.store, metrics=self.metrics)
            self.relay = EventRelay(self.store, self.bus)
            if settings.run_worker:
                self.worker = Worker(settings, engine, self.store, metrics=self.metrics,
                                     tracing=self.tracing)
        else:
            engine = engine if engine is not None else load_engine(settings)
            self.dispatcher = JobRunner(settings, self.store, self.bus, engine, self.artifacts,
                                        metrics=self.metrics, tracing=self.tracing)
        self.metrics.queue_depth.set_function(lambda: self.dispatcher.queue_depth)
        self._worker_stop = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self.health = HealthMonitor(self.store, accepting=self._accepting, metrics=self.metrics)
        self.grpc = aio.server(
            # Telemetry first: it times and counts what authentication refuses, too.
            interceptors=[TelemetryInterceptor(self.metrics, self.tracing),
                          AuthInterceptor(self.tokens)],
            options=[
                ("grpc.max_receive_message_length", settings.grpc_message_limit),
                ("grpc.max_send_message_length", settings.grpc_message_limit),
            ],
        )
        jobs_pb2_grpc.add_JobServiceServicer_to_server(  # type: ignore[no-untyped-call]
            JobService(settings, self.store, self.bus, self.dispatcher, self.artifacts,
                       metrics=self.metrics),
            self.grpc,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.grpc)
        reflection.enable_server_reflection(
            (
                jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.grpc,
        )
        self.port = self.grpc.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
        if self.port == 0:
            raise OSError(f"cannot bind gRPC to {settings.grpc_host}:{settings.grpc_port}")

    @property
    def address(self) -> str:
        host = self.settings.grpc_host
        host = "127.0.0.1" if host in ("0.0.0.0", "[::]", "") else host
        return f"{host}:{self.port}"

    @property
    def metrics_port(self) -> int | None:
        """The real port of `/metrics` once started; None when not served."""
        return self.metrics_server.port if self.metrics_server is not None else None

    def _accepting(self) -> bool:
        if self._worker_task is not None and self._worker_task.done():
            return False
        return self.dispatcher.accepting

    async def start(self) -> None:
        if self.settings.metrics_port is not None:
            self.metrics_server = self.metrics.serve(self.settings.metrics_host,
                                                     self.settings.metrics_port)
        await self.store.migrate()
        if self.relay is not None:
            await self.relay.start()
        await self.dispatcher.start()
        await self.webhooks.start()
        if self.metrics_server is not None:
            self._metrics_task = asyncio.create_task(
                refresh_forever(self.store, self.metrics), name="octavia-metrics")
        if self.worker is not None:
            self._worker_task = asyncio.create_task(self.worker.run(self._worker_stop))
        await self.health.start()
        await self.grpc.start()
        log.info("gRPC listening on %s", self.address)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.stop()
        await self.grpc.stop(grace)
        await self.dispatcher.stop()
        if self._worker_task is not None:
            self._worker_stop.set()
            await self._worker_task
        await self.webhooks.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            await asyncio.gather(self._metrics_task, return_exceptions=True)
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.close)
            self.metrics_server = None
        self.tracing.shutdown()
        self.store.close()

    async def __aenter__(self) -> OctaviaServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def create_server(
    settings: Settings, engine: Engine | None = None
) -> tuple[OctaviaServer, int]:
    """Build the service bound to the configured address (port 0 picks one); not started."""
    server = OctaviaServer(settings, engine)
    return server, server.port


async def serve(settings: Settings, *, with_bridge: bool = True) -> None:
    """Run until SIGTERM or Ctrl-C, then shut down cleanly."""
    configure_logging(settings)
    server, _ = await create_server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bridge_task: asyncio.Task[None] | None = None
    try:
        await server.start()
        if with_bridge:
            bridge_task = await _start_bridge(settings, server, stop)
        await stop.wait()
        log.info("shutting down")
    finally:
        if bridge_task is not None:
            await asyncio.gather(bridge_task, return_exceptions=True)
        await server.stop(grace=5.0)


async def _start_bridge(
    settings: Settings, server: OctaviaServer, stop: asyncio.Event
) -> asyncio.Task[None] | None:
    try:
        from bridge.run import run_bridge
    except ImportError:  # the bridge is optional until it exists
        return None
    # The bridge shares this server's metrics (one /metrics for both) and tracer (one
    # trace from the HTTP request to the stages).
    bridge = run_bridge(settings, server.address, stop, metrics=server.metrics,
                        tracing=server.tracing)
    return asyncio.create_task(bridge, name="bridge")


__all__ = ["OctaviaServer", "create_server", "load_engine", "serve"]
