"""Every Prometheus metric Octavia exports, defined in one place.

One `Metrics` per server (or worker) process, on its own `CollectorRegistry` so that
several servers in one process (tests) never clash; it is created by the entry point and
passed down. docs/operating.md lists each metric and what it means.

Also the bridge's side: `HttpMetricsMiddleware` counts HTTP requests by route and status,
and `exposition()` renders a registry for a `GET /metrics` endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)

if TYPE_CHECKING:
    from .tracing import Tracing

log = logging.getLogger(__name__)

# Stage names as operators read them, by the job phase that runs the stage.
STAGES = {
    "transcribing": "transcribe",
    "translating": "translate",
    "synthesizing": "synthesize",
    "uploading": "upload",
}
PHASES = ("pending", "transcribing", "translating", "synthesizing", "uploading")

# Dubbing stages take from a fraction of a second (tests, short clips) to an hour.
_STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
_RPC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
_MODEL_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

_live: weakref.WeakSet[Metrics] = weakref.WeakSet()


class Metrics:
    """The metric families of one server or worker, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # --- jobs ---------------------------------------------------------------------
        self.jobs_submitted = Counter(
            "octavia_jobs_submitted", "Jobs accepted by SubmitJob.", registry=r)
        self.jobs_completed = Counter(
            "octavia_jobs_completed", "Jobs that finished with their artifacts.", registry=r)
        self.jobs_failed = Counter(
            "octavia_jobs_failed", "Jobs that failed, by machine-readable reason and phase.",
            ["reason", "phase"], registry=r)
        self.jobs_cancelled = Counter(
            "octavia_jobs_cancelled", "Jobs cancelled, by the phase they were in.",
            ["phase"], registry=r)
        self.jobs_by_phase = Gauge(
            "octavia_jobs", "Unfinished jobs in the store, by phase (whole deployment).",
            ["phase"], registry=r)
        self.jobs_running = Gauge(
            "octavia_jobs_running", "Jobs whose engine runs in this process.", registry=r)
        self.queue_depth = Gauge(
            "octavia_queue_depth", "Jobs waiting to start, as this process admits them.",
            registry=r)
        # --- stages -------------------------------------------------------------------
        self.stage_seconds = Histogram(
            "octavia_stage_duration_seconds",
            "Wall time of a finished stage: from entering its phase to the next phase or "
            "the job's end.", ["stage"], buckets=_STAGE_BUCKETS, registry=r)
        self.stage_rtf = Histogram(
            "octavia_stage_realtime_factor",
            "Stage seconds per second of source media (below 1 is faster than real time).",
            ["stage"], buckets=_RTF_BUCKETS, registry=r)
        self.model_load_seconds = Histogram(
            "octavia_model_load_seconds", "Time to load a model, by model name.",
            ["model"], buckets=_MODEL_BUCKETS, registry=r)
        # --- streams and events -------------------------------------------------------
        self.watch_streams = Gauge(
            "octavia_watch_streams_open", "WatchJob streams open now.", registry=r)
        self.events_published = Counter(
            "octavia_events_published", "Job events handed to this process's live watchers' "
            "bus, by type.", ["type"], registry=r)
        self.events_coalesced = Counter(
            "octavia_events_coalesced", "Progress events replaced in a lagging watcher's "
            "buffer by a newer one.", registry=r)
        # --- RPCs and HTTP ------------------------------------------------------------
        self.rpc_requests = Counter(
            "octavia_grpc_requests", "Finished gRPC calls, by method and status code.",
            ["method", "code"], registry=r)
        self.rpc_seconds = Histogram(
            "octavia_grpc_request_duration_seconds",
            "gRPC call latency (a stream counts until it ends), by method.",
            ["method"], buckets=_RPC_BUCKETS, registry=r)
        self.http_requests = Counter(
            "octavia_http_requests", "Finished bridge HTTP requests, by method, route "
            "template and status.", ["method", "route", "status"], registry=r)
        self.http_seconds = Histogram(
            "octavia_http_request_duration_seconds",
            "Bridge HTTP latency (a stream counts until it ends), by method and route.",
            ["method", "route"], buckets=_RPC_BUCKETS, registry=r)
        self.ready = Gauge(
            "octavia_ready", "1 while the readiness check passes (store and engine).",
            registry=r)
        # The process's CPU, memory and file descriptors, and the Python version.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        _live.add(self)

    # --- helpers -----------------------------------------------------------------------

    def observe_stage(self, phase: str, seconds: float, media_seconds: float | None) -> None:
        stage = STAGES.get(phase)
        if stage is None:
            return
        self.stage_seconds.labels(stage).observe(seconds)
        if media_seconds:
            self.stage_rtf.labels(stage).observe(seconds / media_seconds)

    def observe_model_load(self, name: str, seconds: float) -> None:
        self.model_load_seconds.labels(name).observe(seconds)

    @contextmanager
    def watch_stream(self) -> Any:
        self.watch_streams.inc()
        try:
            yield
        finally:
            self.watch_streams.dec()

    def set_phase_counts(self, counts: dict[str, int]) -> None:
        for phase in PHASES:
            self.jobs_by_phase.labels(phase).set(counts.get(phase, 0))

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve `/metrics` over HTTP on a thread (prometheus_client's own server)."""
        httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        server = MetricsServer(httpd, thread)
        log.info("metrics on http://%s:%d/metrics", host, server.port)
        return server


class MetricsServer:
    """The running HTTP endpoint; `close()` stops it."""

    def __init__(self, httpd: Any, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.port: int = httpd.server_port

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def observe_model_load(name: str, seconds: float) -> None:
    """Record a model's load time on every live `Metrics` of this process.

    For the pipeline, which loads models far from where `Metrics` is passed: call it after
    loading, e.g. `observe_model_load("faster-whisper/small", time.monotonic() - t0)`.
    Normally a process has one `Metrics`; in tests with several servers each records it.
    """
    for metrics in list(_live):
        metrics.observe_model_load(name, seconds)


def exposition(metrics: Metrics) -> tuple[bytes, str]:
    """The text exposition of a registry and its content type, for a `/metrics` endpoint."""
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST


# --- the bridge's HTTP metrics ----------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HttpMetricsMiddleware:
    """ASGI middleware counting requests by method, route template and status.

    Use it either around the app or in `Starlette(middleware=[Middleware(...)])`; the
    routes are found through `scope["app"]`, which Starlette sets before its middleware.

    Routes are labelled by their template (`/v1/jobs/{job_id}`), never the raw path, so
    job ids do not become label values; unmatched paths count as `<unmatched>`.

    With `tracing`, each request is also a server span continuing the caller's
    `traceparent` header, current while the request runs, so the gRPC calls it makes can
    carry it on (`server.tracing.trace_metadata()`).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, tracing: Tracing | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self._templates = _RouteTemplates()
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        route = self._templates.of(scope.get("app", self.app), scope)
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            if self.tracing is not None and self.tracing.enabled:
                await self._traced(scope, receive, send_status, method, route)
            else:
                await self.app(scope, receive, send_status)
        finally:
            requests, seconds = self._series_of(method, route, str(status))
            requests.inc()
            seconds.observe(time.perf_counter() - started)

    def _series_of(self, method: str, route: str, status: str) -> tuple[Any, Any]:
        """The labelled counter and histogram, looked up once per label set (`labels()`
        takes a lock and builds a key on every call)."""
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                self.metrics.http_requests.labels(method, route, status),
                self.metrics.http_seconds.labels(method, route))
        return series

    async def _traced(
        self, scope: Scope, receive: Receive, send: Send, method: str, route: str
    ) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        from . import tracing

        assert self.tracing is not None
        headers = {key.decode("latin-1"): value.decode("latin-1")
                   for key, value in scope.get("headers", ())}
        with self.tracing.tracer.start_as_current_span(
            f"{method} {route}", context=tracing.extract(headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
        ) as span:
            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", int(message["status"]))
                    if int(message["status"]) >= 500:
                        span.set_status(trace.Status(trace.StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, send_traced)


class _RouteTemplates:
    """The route template of each recent request path.

    Finding it tries the app's routes one regex at a time, which cost as much as the
    rest of a cached status request; pollers ask for the same few paths over and over.
    Bounded: the oldest paths are forgotten first."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._known: dict[tuple[str, str, str], str] = {}

    def of(self, app: Any, scope: Scope) -> str:
        key = (scope.get("method", "GET"), scope.get("root_path", ""), scope["path"])
        template = self._known.get(key)
        if template is None:
            template = self._known[key] = _route_template(app, scope)
            if len(self._known) > self.size:
                del self._known[next(iter(self._known))]
        return template


def _route_template(app: Any, scope: Scope) -> str:
    try:
        from starlette.routing import Match
    except ImportError:  # pragma: no cover - starlette is a dependency of the bridge
        return "<unmatched>"
    routes = getattr(app, "routes", None) or []
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "<unmatched>"))
    return "<unmatched>"


def metrics_route(metrics: Metrics) -> Any:
    """A Starlette `Route("/metrics")` serving `metrics` (for the bridge)."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request: Request) -> Response:
        body, content_type = exposition(metrics)
        return Response(body, media_type=content_type)

    return Route("/metrics", endpoint, methods=["GET"], name="metrics")
