"""The in-process job runner: a bounded queue, N workers, cancel, and crash recovery.

request → store (JobRecord + SUBMITTED event) → queue → a worker task hands the job to the
JobExecutor, which runs the engine in a thread → each report is stored as an event → the
bus hands it to watchers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from octavia.errors import Reason, ResourceExhausted

from . import tracing as tracing_
from .artifacts import ArtifactStore
from .engine import Engine
from .events import EventBus
from .execution import JobExecutor, cancellation
from .jobs import EventType, Phase, Status
from .metrics import Metrics
from .settings import Settings
from .store import JobEvent, JobRecord, JobStore
from .store.models import utcnow
from .store.store import Mutation
from .tracing import Tracing

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Where submitted jobs go and how they are cancelled: in-process, or a shared queue."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def submit(self, record: JobRecord) -> tuple[JobEvent, bool]: ...
    async def cancel(self, job_id: str, owner: str) -> dict[str, Any]: ...
    async def requeue(self, job_id: str, mutation: Mutation) -> JobEvent | None:
        """Queue a job again (resumed after review, re-dubbed) after `mutation` made it
        pending; RESOURCE_EXHAUSTED when the queue is full."""
        ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def accepting(self) -> bool:
        """Whether jobs submitted now will be run (readiness)."""
        ...


class JobRunner:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        bus: EventBus,
        engine: Engine,
        artifacts: ArtifactStore,
        *,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self.executor = JobExecutor(
            settings, store, bus.publish, engine, artifacts, threads=settings.concurrency,
            metrics=metrics, tracing=tracing,
        )
        self._traces: dict[str, tracing_.Carrier] = {}  # submitter's trace, by waiting job
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._pending: set[str] = set()
        self._admission = asyncio.Lock()
        self._workers: list[asyncio.Task[None]] = []

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self._recover()
        self._workers = [
            asyncio.create_task(self._work(), name=f"octavia-worker-{n}")
            for n in range(self.settings.concurrency)
        ]

    async def stop(self) -> None:
        """Stop taking jobs; running ones are cancelled at their next check and left to
        recovery (they are failed as interrupted at the next start)."""
        self.executor.stop_all()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await self.executor.close()
        self.executor.engine.close()

    # --- requests ----------------------------------------------------------------------

    async def submit(self, record: JobRecord) -> tuple[JobEvent, bool]:
        """Store and queue a job; RESOURCE_EXHAUSTED when the queue is full."""
        async with self._admission:
            if len(self._pending) >= self.settings.queue_size:
                raise queue_full(self.settings)
            event, created = await self.store.create(record)
            if created:
                self._pending.add(event.job_id)
                if trace := tracing_.carrier():
                    self._traces[event.job_id] = trace
        if created:
            self.bus.publish(event)
            self._queue.put_nowait(event.job_id)
        return event, created

    async def requeue(self, job_id: str, mutation: Mutation) -> JobEvent | None:
        async with self._admission:
            if len(self._pending) >= self.settings.queue_size:
                raise queue_full(self.settings)
            event = await self.store.reopen(job_id, mutation)
            if event is not None:
                self._pending.add(job_id)
        if event is not None:
            self.bus.publish(event)
            self._queue.put_nowait(job_id)
        return event

    async def cancel(self, job_id: str, owner: str) -> dict[str, Any]:
        record = await self.store.get(job_id, owner)  # NotFound for strangers
        self.executor.cancel_local(job_id)
        cancelled = await self.executor.change(job_id, cancellation)
        if cancelled is not None and self.metrics is not None:
            self.metrics.jobs_cancelled.labels(record.phase).inc()
        self._pending.discard(job_id)
        self._traces.pop(job_id, None)
        return await self.store.snapshot(job_id, owner)

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def accepting(self) -> bool:
        return bool(self._workers) and not any(task.done() for task in self._workers)

    # --- internals ---------------------------------------------------------------------

    async def _recover(self) -> None:
        """Requeue jobs still pending from a previous run; fail those a crash interrupted."""
        for job_id in await self.store.ids_with_status(Status.PROCESSING):
            event = await self.executor.change(job_id, _interrupted)
            if event is not None:
                phase = event.snapshot.get("error_phase") or Phase.PENDING
                self.executor.count_failure(Reason.INTERRUPTED, phase)
            log.warning("job %s was interrupted by a restart; marked failed", job_id)
        for job_id in await self.store.ids_with_status(Status.PENDING):
            self._pending.add(job_id)
            self._queue.put_nowait(job_id)
        if self._pending:
            log.info("resumed %d pending job(s)", len(self._pending))

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            if job_id not in self._pending:  # cancelled while waiting
                self._traces.pop(job_id, None)
                continue
            self._pending.discard(job_id)
            try:
                taken = await self.executor.take(job_id)
                await self._announce_queue()
                trace = self._traces.pop(job_id, None)
                if taken:
                    await self.executor.run(job_id, trace_carrier=trace)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s: runner error", job_id)

    async def _announce_queue(self) -> None:
        """Tell waiting jobs that they moved up."""
        if self._pending:
            waiting = await self.store.ids_with_status(Status.PENDING)
            ids = [job_id for job_id in waiting if job_id in self._pending]
            self.bus.publish_all(await self.store.touch_pending(ids))


def queue_full(settings: Settings) -> ResourceExhausted:
    return ResourceExhausted(
        f"the job queue is full ({settings.queue_size} waiting); retry later",
        reason=Reason.QUEUE_FULL,
    )


def _interrupted(job: JobRecord) -> EventType:
    phase = job.phase
    job.status = Status.FAILED
    job.phase = Phase.FAILED
    job.error_message = f"interrupted by a server restart while {phase}; submit the job again"
    job.error_reason = Reason.INTERRUPTED
    job.error_retryable = True
    job.error_phase = phase
    job.current_step = f"Interrupted while {phase}"
    job.completed_at = utcnow()
    job.eta_seconds = None
    return EventType.FAILED
