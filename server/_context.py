"""The JobContext an engine reports through, bridging its worker thread to the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .engine import ArtifactWriter, Checkpoints, JobCancelled
from .jobs import RUNNING_PHASES, EventType, Phase, Status, overall_percentage
from .store import JobEvent, JobRecord
from .store.models import utcnow

if TYPE_CHECKING:
    from ._job_telemetry import JobTelemetry
    from .store.store import Mutation

Apply = Callable[["Mutation"], Coroutine[Any, Any, JobEvent | None]]
IsOver = Callable[[], Coroutine[Any, Any, bool]]

# How often a context that watches the store asks it whether the job was cancelled.
STORE_POLL_SECONDS = 0.5


class RunnerContext:
    """Turns an engine's reports into stored, published events.

    Each report blocks the worker thread until its event is stored, so events keep the
    order the engine reported them in. Progress reports closer together than
    `min_interval` are skipped (the next one carries the news); phase changes never are.

    A job run again (after a worker died) may re-enter phases it had already reached;
    those are not announced again, so watchers never see a phase twice or go backwards.
    """

    def __init__(
        self,
        job_id: str,
        apply: Apply,
        loop: asyncio.AbstractEventLoop,
        writer: ArtifactWriter,
        min_interval: float,
        *,
        checkpoints: Checkpoints,
        reached: str = Phase.PENDING,
        is_over: IsOver | None = None,
        telemetry: JobTelemetry | None = None,
    ) -> None:
        self.job_id = job_id
        self.cancelled = threading.Event()
        self.phase = Phase.PENDING
        self._apply = apply
        self._loop = loop
        self._writer = writer
        self._checkpoints = checkpoints
        self._min_interval = min_interval
        self._last_progress = 0.0
        self._reached = _rank(reached)
        self._is_over = is_over
        self._last_poll = time.monotonic()
        self._telemetry = telemetry

    def enter(self, phase: Phase, step: str) -> None:
        self.check_cancelled()
        self.phase = phase
        if self._telemetry is not None:  # timed even when re-run, as the work is redone
            self._telemetry.enter(phase)
        if _rank(phase) <= self._reached:
            return  # reached before this run: already announced
        self._reached = _rank(phase)

        def mutate(job: JobRecord) -> EventType:
            if job.status == Status.PENDING:
                job.status = Status.PROCESSING
                job.started_at = job.started_at or utcnow()
            job.phase = phase
            job.progress = max(job.progress, overall_percentage(phase, 0.0))
            job.current_step = step
            return EventType.PHASE_CHANGED

        self._submit(mutate)
        self._last_progress = time.monotonic()

    def progress(self, fraction: float, step: str) -> None:
        self.check_cancelled()
        now = time.monotonic()
        if now - self._last_progress < self._min_interval and fraction < 1.0:
            return
        self._last_progress = now
        phase = self.phase
        if phase not in (Phase.TRANSCRIBING, Phase.TRANSLATING, Phase.SYNTHESIZING,
                         Phase.UPLOADING):
            return
        if _rank(phase) < self._reached:
            return  # redoing work a previous run did; the bar already shows it
        percentage = overall_percentage(phase, fraction)

        def mutate(job: JobRecord) -> EventType | None:
            new = max(job.progress, percentage)
            if new == job.progress and step == job.current_step:
                return None
            job.progress = new
            job.current_step = step
            return EventType.PROGRESS

        self._submit(mutate)

    def update(
        self,
        *,
        source_language: str | None = None,
        media_duration_seconds: float | None = None,
        eta_seconds: float | None = None,
    ) -> None:
        self.check_cancelled()
        if media_duration_seconds is not None and self._telemetry is not None:
            self._telemetry.media(media_duration_seconds)

        def mutate(job: JobRecord) -> EventType | None:
            changed = False
            if source_language and job.source_language != source_language:
                job.source_language, changed = source_language, True
            if media_duration_seconds is not None and job.media_duration != media_duration_seconds:
                job.media_duration, changed = media_duration_seconds, True
            if eta_seconds is not None:
                eta = round(max(eta_seconds, 0.0), 1)
                if job.eta_seconds != eta:
                    job.eta_seconds, changed = eta, True
            return EventType.UPDATED if changed else None

        self._submit(mutate)

    def check_cancelled(self) -> None:
        if self._is_over is not None and time.monotonic() - self._last_poll > STORE_POLL_SECONDS:
            self._last_poll = time.monotonic()
            if asyncio.run_coroutine_threadsafe(self._is_over(), self._loop).result(timeout=30):
                self.cancelled.set()
        if self.cancelled.is_set():
            raise JobCancelled(self.job_id)

    def artifact_writer(self) -> ArtifactWriter:
        return self._writer

    def checkpoints(self) -> Checkpoints:
        return self._checkpoints

    def _submit(self, mutation: Mutation) -> None:
        future = asyncio.run_coroutine_threadsafe(self._apply(mutation), self._loop)
        while True:
            try:
                future.result(timeout=0.5)
                break
            except TimeoutError:
                if self._loop.is_closed():  # the service is gone; stop the engine
                    raise JobCancelled(self.job_id) from None
        self.check_cancelled()


def _rank(phase: str) -> int:
    """Order of a running phase (0 before any)."""
    try:
        return RUNNING_PHASES.index(Phase(phase)) + 1
    except ValueError:
        return 0
