"""Where one job's time went: stage timings for the metrics, a job span with stage spans.

The engine thread calls `enter(phase)` (through the RunnerContext); the executor calls
`finish(outcome)` once the engine returned. The two never overlap, so no lock is needed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from . import logs, tracing
from .metrics import STAGES, Metrics
from .tracing import Tracing


class JobTelemetry:
    def __init__(
        self,
        metrics: Metrics | None,
        tracing_: Tracing,
        job_id: str,
        *,
        owner: str,
        media_seconds: float | None,
        trace_carrier: Mapping[str, str] | None = None,
    ) -> None:
        self._metrics = metrics
        self._tracer = tracing_.tracer
        self._media_seconds = media_seconds
        self.span: Span = self._tracer.start_span(
            "octavia.job",
            context=tracing.extract(trace_carrier),
            attributes={"octavia.job_id": job_id, "octavia.user": owner},
        )
        self._stage: str | None = None
        self._stage_span: Span | None = None
        self._stage_started = 0.0

    def enter(self, phase: str) -> None:
        """The engine started `phase`: the previous stage finished."""
        if phase == self._stage:
            return
        self._end_stage(finished=True)
        logs.set_field("phase", phase)
        if phase not in STAGES:
            return
        self._stage = phase
        self._stage_started = time.perf_counter()
        self._stage_span = self._tracer.start_span(
            f"octavia.stage.{STAGES[phase]}",
            context=trace.set_span_in_context(self.span),
            attributes={"octavia.phase": phase},
        )

    def media(self, seconds: float) -> None:
        self._media_seconds = seconds

    def finish(self, outcome: str, reason: str | None = None) -> None:
        """The job ended: `completed`, `failed` or `cancelled`."""
        self._end_stage(finished=outcome == "completed", error=reason)
        self.span.set_attribute("octavia.outcome", outcome)
        if reason:
            self.span.set_attribute("octavia.error_reason", reason)
        if outcome == "failed":
            self.span.set_status(Status(StatusCode.ERROR, reason))
        self.span.end()

    def _end_stage(self, *, finished: bool, error: str | None = None) -> None:
        if self._stage is None or self._stage_span is None:
            return
        seconds = time.perf_counter() - self._stage_started
        if finished and self._metrics is not None:
            self._metrics.observe_stage(self._stage, seconds, self._media_seconds)
        if error:
            self._stage_span.set_status(Status(StatusCode.ERROR, error))
        self._stage_span.end()
        self._stage, self._stage_span = None, None
