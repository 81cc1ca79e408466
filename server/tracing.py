"""OpenTelemetry tracing, off unless `tracing` is set: a span per RPC, per job, per stage.

One trace follows a job: the bridge's request → `SubmitJob` (the `traceparent` gRPC
metadata continues the caller's trace) → the job span (its parent travels with the job:
in memory in embedded mode, in the procrastinate task's kwargs otherwise) → one child span
per stage. Each server owns its `TracerProvider` (never the global one), so tests can run
several servers, each with its own exporter. The W3C trace-context format is used on the
wire; only `opentelemetry-api` is needed while tracing is off.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from .settings import Settings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
_propagator = TraceContextTextMapPropagator()

Carrier = dict[str, str]


class Tracing:
    """The tracer of one server (a no-op one when tracing is off)."""

    def __init__(self, provider: TracerProvider | None = None, *, owned: bool = False) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self.tracer: trace.Tracer = (
            provider.get_tracer("octavia") if provider is not None else trace.NoOpTracer()
        )
        self._owned = owned

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        return cls(create_provider(settings), owned=True)

    def shutdown(self) -> None:
        """Flush and stop the exporter (only a provider this object created)."""
        if self.provider is not None and self._owned:
            self.provider.shutdown()


def create_provider(settings: Settings) -> TracerProvider | None:
    """A provider exporting as `tracing_exporter` says; None while tracing is off."""
    if not settings.tracing:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning("OCTAVIA_TRACING is on but opentelemetry-sdk is not installed; "
                    "no spans are recorded")
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": "octavia"}))
    exporter: Any = None
    if settings.tracing_exporter == "console":
        exporter = ConsoleSpanExporter()
    elif settings.tracing_exporter == "otlp":
        exporter = _otlp_exporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _otlp_exporter() -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
            OTLPSpanExporter,
        )
    except ImportError:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            log.warning("OCTAVIA_TRACING_EXPORTER=otlp needs opentelemetry-exporter-otlp; "
                        "spans are recorded but not exported")
            return None
    return OTLPSpanExporter()


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context | None:
    """The context a carrier (gRPC metadata, task kwargs) continues; None when it has none."""
    if not carrier or TRACEPARENT not in carrier:
        return None
    return _propagator.extract(dict(carrier))


def extract_metadata(metadata: Iterable[tuple[str, Any]] | None) -> otel_context.Context | None:
    carrier = {key: value for key, value in metadata or () if key == TRACEPARENT
               and isinstance(value, str)}
    return extract(carrier)


def carrier() -> Carrier:
    """The current span's `traceparent`, to hand to work that runs elsewhere (empty when
    no span is recording)."""
    out: Carrier = {}
    if trace.get_current_span().get_span_context().is_valid:
        _propagator.inject(out)
    return out


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """gRPC metadata continuing the current trace; the bridge appends it to its calls."""
    return tuple(carrier().items())
