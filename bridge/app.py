"""`create_app(settings)`: the browser bridge as a Starlette app.

It keeps no job state: every request becomes a gRPC call on one `grpc.aio` channel,
opened in `lifespan` and kept on `app.state`, with the caller's token as metadata.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from grpc import aio
from grpc_health.v1 import health_pb2_grpc
from octavia.v1 import jobs_pb2_grpc
from starlette.applications import Starlette
from starlette.middleware import Middleware

from server.auth import TokenAuthority
from server.limits import StreamQuota
from server.metrics import HttpMetricsMiddleware, Metrics, metrics_route
from server.settings import Settings
from server.tracing import Tracing

from . import routes_artifacts, routes_jobs, routes_review, routes_session, web
from ._fanout import Feeds
from ._status_cache import StatusCache
from .errors import EXCEPTION_HANDLERS


def create_app(
    settings: Settings,
    grpc_target: str | None = None,
    *,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
) -> Starlette:
    """The bridge talking to `grpc_target`, else `settings.grpc_target`, else the local
    server at `grpc_host:grpc_port`. Beside `octavia serve` it shares the server's metrics
    (one /metrics for both) and tracer (one trace from the HTTP request to the stages)."""
    metrics = metrics if metrics is not None else Metrics()
    tracing = tracing if tracing is not None else Tracing.from_settings(settings)
    target = grpc_target or settings.grpc_target or f"{settings.grpc_host}:{settings.grpc_port}"

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        channel = aio.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", settings.grpc_message_limit),
                ("grpc.max_receive_message_length", settings.grpc_message_limit),
            ],
        )
        app.state.channel = channel
        app.state.jobs = jobs_pb2_grpc.JobServiceStub(channel)  # type: ignore[no-untyped-call]
        app.state.health = health_pb2_grpc.HealthStub(channel)
        try:
            yield
        finally:
            app.state.feeds.close()  # open streams end now, not at the channel's close
            await channel.close(grace=1.0)

    app = Starlette(
        routes=[
            *routes_jobs.ROUTES,
            *routes_artifacts.ROUTES,
            *routes_review.ROUTES,
            *routes_session.ROUTES,
            *web.routes(),
            metrics_route(metrics),
        ],
        middleware=[Middleware(HttpMetricsMiddleware, metrics=metrics, tracing=tracing)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.tokens = TokenAuthority(settings)
    app.state.grpc_target = target
    # One WatchJob per job and user in this process, fanned out to its SSE clients.
    app.state.feeds = Feeds(lambda: app.state.jobs, settings.sse_heartbeat_seconds)
    app.state.sse_streams = StreamQuota(settings.max_streams_per_user)
    # One GetStatus per job, user and max age, however often its pollers ask.
    app.state.statuses = StatusCache(settings.bridge_status_max_age_seconds)
    return app
