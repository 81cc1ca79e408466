"""The in-process job runner: a bounded queue, N workers, cancel, and crash recovery.

request → store (JobRecord + SUBMITTED event) → queue → worker thread runs the engine →
each report is stored as an event → the bus hands it to watchers.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from octavia.errors import NotFound, Reason, ResourceExhausted

from ._context import RunnerContext
from .artifacts import ArtifactStore
from .engine import Engine, EngineError, JobCancelled, JobResult, JobSpec
from .events import EventBus
from .jobs import EventType, Phase, Status
from .settings import Settings
from .store import JobEvent, JobRecord, JobStore
from .store.models import utcnow
from .store.store import Mutation

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        bus: EventBus,
        engine: Engine,
        artifacts: ArtifactStore,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.engine = engine
        self.artifacts = artifacts
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._pending: set[str] = set()
        self._running: dict[str, RunnerContext] = {}
        self._admission = asyncio.Lock()
        self._workers: list[asyncio.Task[None]] = []
        self._threads = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="octavia-job"
        )

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
        for context in self._running.values():
            context.cancelled.set()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        # Engine threads may be waiting on this loop to store their last report: keep the
        # loop running while they wind down.
        await asyncio.to_thread(self._threads.shutdown, wait=True, cancel_futures=True)

    # --- requests ----------------------------------------------------------------------

    async def submit(self, record: JobRecord) -> tuple[JobEvent, bool]:
        """Store and queue a job; RESOURCE_EXHAUSTED when the queue is full."""
        async with self._admission:
            if len(self._pending) >= self.settings.queue_size:
                raise ResourceExhausted(
                    f"the job queue is full ({self.settings.queue_size} waiting); retry later",
                    reason=Reason.QUEUE_FULL,
                )
            event, created = await self.store.create(record)
            if created:
                self._pending.add(event.job_id)
        if created:
            self.bus.publish(event)
            self._queue.put_nowait(event.job_id)
        return event, created

    async def cancel(self, job_id: str, owner: str) -> dict[str, object]:
        await self.store.get(job_id, owner)  # NotFound for strangers

        def mutate(job: JobRecord) -> EventType:
            job.status = Status.CANCELLED
            job.phase = Phase.CANCELLED
            job.current_step = "Cancelled"
            job.completed_at = utcnow()
            job.eta_seconds = None
            return EventType.CANCELLED

        context = self._running.get(job_id)
        if context is not None:
            context.cancelled.set()
        await self._change(job_id, mutate)
        self._pending.discard(job_id)
        return await self.store.snapshot(job_id, owner)

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    # --- internals ---------------------------------------------------------------------

    async def _change(self, job_id: str, mutation: Mutation) -> JobEvent | None:
        event = await self.store.change(job_id, mutation)
        if event is not None:
            self.bus.publish(event)
        return event

    async def _recover(self) -> None:
        """Requeue jobs still pending from a previous run; fail those a crash interrupted."""
        for job_id in await self.store.ids_with_status(Status.PROCESSING):
            await self._change(job_id, _interrupted)
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
                continue
            self._pending.discard(job_id)
            try:
                taken = await self._change(job_id, _taken)
                await self._announce_queue()
                if taken is not None:
                    await self._run(job_id)
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

    async def _run(self, job_id: str) -> None:
        try:
            record = await self.store.get(job_id)
        except NotFound:
            return
        if record.is_terminal:
            return
        workdir = self.settings.data_dir / "work" / job_id
        workdir.mkdir(parents=True, exist_ok=True)
        spec = JobSpec(
            job_id=job_id,
            media_path=Path(record.media_path),
            filename=record.source_filename,
            target_language=record.target_language,
            source_language=record.source_language,
            mix_mode=record.mix_mode,
            workdir=workdir,
        )
        loop = asyncio.get_running_loop()
        context = RunnerContext(
            job_id,
            lambda mutation: self._change(job_id, mutation),
            loop,
            self.artifacts.writer(job_id),
            self.settings.progress_interval_seconds,
        )
        self._running[job_id] = context
        try:
            result = await loop.run_in_executor(self._threads, self.engine.run, spec, context)
        except JobCancelled:
            await self._discard(job_id)
        except EngineError as error:
            await self._fail(job_id, context.phase, error.message, error.reason, error.retryable)
        except MemoryError:
            await self._fail(job_id, context.phase, "ran out of memory", Reason.OUT_OF_MEMORY,
                             True)
        except Exception as error:
            log.exception("job %s failed in %s", job_id, context.phase)
            message = f"{context.phase.value} failed: {type(error).__name__}: {error}"
            await self._fail(job_id, context.phase, message, Reason.STAGE_FAILED, False)
        else:
            await self._complete(job_id, result)
        finally:
            self._running.pop(job_id, None)
            shutil.rmtree(workdir, ignore_errors=True)

    async def _complete(self, job_id: str, result: JobResult) -> None:
        def mutate(job: JobRecord) -> EventType:
            job.status = Status.COMPLETED
            job.phase = Phase.COMPLETED
            job.progress = 100.0
            job.current_step = "Completed"
            job.completed_at = utcnow()
            job.started_at = job.started_at or job.completed_at
            job.output_file = result.output_file
            job.artifacts = [asdict(a) for a in result.artifacts]
            job.eta_seconds = 0.0
            return EventType.COMPLETED

        if await self._change(job_id, mutate) is None:  # cancelled at the last moment
            await self._discard(job_id)

    async def _fail(
        self, job_id: str, phase: Phase, message: str, reason: str, retryable: bool
    ) -> None:
        def mutate(job: JobRecord) -> EventType:
            job.status = Status.FAILED
            job.phase = Phase.FAILED
            job.error_message = message
            job.error_reason = reason
            job.error_retryable = retryable
            job.error_phase = phase.value
            job.current_step = f"Failed while {phase.value}" if phase != Phase.PENDING else "Failed"
            job.completed_at = utcnow()
            job.eta_seconds = None
            return EventType.FAILED

        await self._change(job_id, mutate)
        await self._discard(job_id)

    async def _discard(self, job_id: str) -> None:
        await asyncio.to_thread(self.artifacts.discard, job_id)


def _taken(job: JobRecord) -> EventType:
    job.status = Status.PROCESSING
    job.started_at = utcnow()
    job.current_step = "Starting"
    return EventType.UPDATED


def _interrupted(job: JobRecord) -> EventType:
    phase = job.phase
    job.status = Status.FAILED
    job.phase = Phase.FAILED
    job.error_message = (
        f"interrupted by a server restart while {phase}; submit the job again"
    )
    job.error_reason = Reason.INTERRUPTED
    job.error_retryable = True
    job.error_phase = phase
    job.current_step = f"Interrupted while {phase}"
    job.completed_at = utcnow()
    job.eta_seconds = None
    return EventType.FAILED


def new_job_id() -> str:
    return str(uuid.uuid4())
