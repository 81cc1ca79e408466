"""Running one job to its end, wherever it runs: the in-process runner or a procrastinate
worker. Takes the job, drives the engine in a worker thread, records the outcome."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import shutil
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from octavia.errors import NotFound, Reason
from opentelemetry import trace

from . import logs
from ._context import RunnerContext
from ._job_telemetry import JobTelemetry
from .artifacts import ArtifactStore
from .engine import Engine, EngineError, JobCancelled, JobPaused, JobResult, JobSpec
from .faults import is_disk_full, is_store_unreachable
from .jobs import EventType, Phase, Status, overall_percentage
from .metrics import Metrics
from .settings import Settings
from .store import JobEvent, JobRecord, JobStore
from .store.models import utcnow
from .store.store import JobIsFinal, Mutation
from .tracing import Tracing

log = logging.getLogger(__name__)

Publish = Callable[[JobEvent], None]


class JobExecutor:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        publish: Publish,
        engine: Engine,
        artifacts: ArtifactStore,
        threads: int,
        *,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.tracing = tracing if tracing is not None else Tracing()
        self.store = store
        self.publish = publish
        self.engine = engine
        self.artifacts = artifacts
        self.running: dict[str, RunnerContext] = {}
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="octavia-job")

    async def change(
        self, job_id: str, mutation: Mutation, *, patient: bool = False
    ) -> JobEvent | None:
        """Store a change and publish its event; None when nothing changed or the job is over.
        A `patient` change (the job's own progress) waits out a short database outage."""
        try:
            event = await (self._patiently(job_id, mutation) if patient
                           else self.store.change(job_id, mutation))
        except JobIsFinal:
            return None
        if event is not None:
            self.publish(event)
        return event

    def cancel_local(self, job_id: str) -> None:
        context = self.running.get(job_id)
        if context is not None:
            context.cancelled.set()

    def stop_all(self) -> None:
        """Ask every running engine to stop at its next check."""
        for context in self.running.values():
            context.cancelled.set()

    async def close(self) -> None:
        """Stop running engines and wait for their threads while the loop runs on (a
        thread may be waiting on this loop to store its last report)."""
        self.stop_all()
        await asyncio.to_thread(self._threads.shutdown, wait=True, cancel_futures=True)

    async def take(self, job_id: str) -> bool:
        """Mark the job as processing; False when it is already over (e.g. cancelled)."""
        return await self.change(job_id, _taken, patient=True) is not None

    async def run(
        self,
        job_id: str,
        *,
        watch_store: bool = False,
        trace_carrier: Mapping[str, str] | None = None,
    ) -> None:
        """Run a taken job to its end; `watch_store` also notices a cancel written by
        another process; `trace_carrier` continues the submitter's trace."""
        try:
            record = await self.store.get(job_id)
        except NotFound:
            return
        telemetry = JobTelemetry(self.metrics, self.tracing, job_id, owner=record.owner,
                                 media_seconds=record.media_duration,
                                 trace_carrier=trace_carrier)
        with logs.bind(job_id=job_id, user=record.owner, phase=record.phase), \
                trace.use_span(telemetry.span, end_on_exit=False):
            if self.metrics is not None:
                self.metrics.jobs_running.inc()
            outcome: tuple[str, str | None] = ("cancelled", None)
            try:
                outcome = await self._run(job_id, record, telemetry, watch_store)
            finally:
                telemetry.finish(*outcome)
                if self.metrics is not None:
                    self.metrics.jobs_running.dec()

    async def _run(
        self, job_id: str, record: JobRecord, telemetry: JobTelemetry, watch_store: bool
    ) -> tuple[str, str | None]:
        """The engine's run; returns the outcome (`completed`/`failed`/`cancelled`, reason)."""
        workdir = self.settings.data_dir / "work" / job_id
        workdir.mkdir(parents=True, exist_ok=True)
        media = await self._local_media(job_id, record, workdir)
        spec = JobSpec(
            job_id=job_id,
            media_path=media,
            filename=record.source_filename,
            target_language=record.target_language,
            source_language=record.source_language,
            mix_mode=record.mix_mode,
            workdir=workdir,
            pause_after=frozenset(Phase(p) for p in record.pause_after or []),
        )
        loop = asyncio.get_running_loop()
        context = RunnerContext(
            job_id,
            self._apply_for(job_id),
            loop,
            self.artifacts.writer(job_id, record.version),
            self.settings.progress_interval_seconds,
            checkpoints=self.artifacts.checkpoints(job_id),
            reached=record.phase,
            is_over=self._is_over(job_id) if watch_store else None,
            telemetry=telemetry,
        )
        self.running[job_id] = context
        # The engine thread runs in a copy of this context: its log lines carry the job's
        # fields and its spans (if it makes any) nest under the job span.
        run_engine = contextvars.copy_context().run
        try:
            try:
                result = await loop.run_in_executor(
                    self._threads, run_engine, self.engine.run, spec, context
                )
            finally:
                logs.set_field("phase", context.phase.value)
        except asyncio.CancelledError:  # aborted (procrastinate) or shutting down
            context.cancelled.set()  # the engine thread stops at its next check
            raise
        except JobCancelled:
            await self.discard(job_id, record.version)
            return "cancelled", None
        except JobPaused as paused:
            await self.change(job_id, pause(paused.phase), patient=True)
            log.info("job paused for review after %s", paused.phase.value)
            return "paused", None
        except EngineError as error:
            await self._fail(job_id, record.version, context.phase, error.message,
                             error.reason, error.retryable)
            return "failed", error.reason
        except MemoryError:
            await self._fail(job_id, record.version, context.phase, "ran out of memory",
                             Reason.OUT_OF_MEMORY, True)
            return "failed", Reason.OUT_OF_MEMORY
        except Exception as error:
            if is_disk_full(error):
                message = (f"the server ran out of disk space while {context.phase.value}; "
                           "submit the job again later")
                await self._fail(job_id, record.version, context.phase, message,
                                 Reason.STORAGE_FULL, True)
                return "failed", Reason.STORAGE_FULL
            log.exception("job %s failed in %s", job_id, context.phase)
            message = f"{context.phase.value} failed: {type(error).__name__}: {error}"
            await self._fail(job_id, record.version, context.phase, message,
                             Reason.STAGE_FAILED, False)
            return "failed", Reason.STAGE_FAILED
        else:
            if await self._complete(job_id, record.version, result):
                return "completed", None
            return "cancelled", None
        finally:
            self.running.pop(job_id, None)
            shutil.rmtree(workdir, ignore_errors=True)

    async def _local_media(self, job_id: str, record: JobRecord, workdir: Path) -> Path:
        """The source media on this machine: where the replica stored it, or else a copy
        fetched from the artifact store (a worker on another machine). A job with neither
        reaches the engine with the missing path and fails as MEDIA_UNREADABLE."""
        media = Path(record.media_path)
        if await asyncio.to_thread(media.is_file):
            return media
        fetched = workdir / media.name
        if await asyncio.to_thread(self.artifacts.fetch_source, job_id, fetched):
            return fetched
        log.warning("job %s: source media %s is not on this machine nor in the artifact store",
                    job_id, media)
        return media

    def _apply_for(self, job_id: str) -> Callable[[Mutation], Coroutine[Any, Any, JobEvent | None]]:
        async def apply(mutation: Mutation) -> JobEvent | None:
            try:
                with logs.bind(job_id=job_id):
                    event = await self._patiently(job_id, mutation)
            except JobIsFinal:
                self.cancel_local(job_id)  # cancelled elsewhere: stop the engine
                return None
            if event is not None:
                self.publish(event)
            return event

        return apply

    async def _patiently(self, job_id: str, mutation: Mutation) -> JobEvent | None:
        """Store an engine's report, waiting out a database that is briefly away (locked,
        restarting, unreachable) for up to `store_outage_seconds`; the engine thread waits
        with it, so the job goes on where it was instead of failing."""
        deadline = time.monotonic() + self.settings.store_outage_seconds
        wait = 0.2
        while True:
            try:
                return await self.store.change(job_id, mutation)
            except Exception as error:
                if not is_store_unreachable(error) or time.monotonic() + wait > deadline:
                    raise
                log.warning("job store unreachable (%s); retrying in %.1f s",
                            type(error).__name__, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 5.0)

    def _is_over(self, job_id: str) -> Callable[[], Coroutine[Any, Any, bool]]:
        async def is_over() -> bool:
            return (await self.store.get(job_id)).is_terminal

        return is_over

    async def _complete(self, job_id: str, version: int, result: JobResult) -> bool:
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
            job.versions = [*(v for v in job.versions or [] if v["version"] != job.version),
                            {"version": job.version, "completed_at": job.completed_at.isoformat(),
                             "output_file": job.output_file, "artifacts": job.artifacts}]
            return EventType.COMPLETED

        if await self.change(job_id, mutate, patient=True) is None:  # cancelled at the last moment
            await self.discard(job_id, version)
            return False
        if self.metrics is not None:
            self.metrics.jobs_completed.inc()
        log.info("job completed")
        return True

    async def _fail(
        self, job_id: str, version: int, phase: Phase, message: str, reason: str,
        retryable: bool,
    ) -> None:
        failed = failure(phase, message, reason, retryable)
        if await self.change(job_id, failed, patient=True) is not None:
            self.count_failure(reason, phase)
            log.info("job failed while %s: %s (%s)", Phase(phase).value, message, reason)
        await self.discard(job_id, version)

    def count_failure(self, reason: str, phase: Phase | str) -> None:
        if self.metrics is not None:
            self.metrics.jobs_failed.labels(str(reason), Phase(phase).value).inc()

    async def discard(self, job_id: str, version: int) -> None:
        """Remove what a job that did not complete wrote; a failed re-dub keeps the
        versions before it and the checkpoints they were made from."""
        if version == 1:
            await asyncio.to_thread(self.artifacts.discard, job_id)
        else:
            await asyncio.to_thread(self.artifacts.discard_version, job_id, version)


def failure(phase: Phase | str, message: str, reason: str, retryable: bool) -> Mutation:
    """The change that ends a job as failed."""
    phase_name = Phase(phase).value

    def mutate(job: JobRecord) -> EventType:
        job.status = Status.FAILED
        job.phase = Phase.FAILED
        job.error_message = message
        job.error_reason = reason
        job.error_retryable = retryable
        job.error_phase = phase_name
        job.current_step = "Failed" if phase_name == "pending" else f"Failed while {phase_name}"
        job.completed_at = utcnow()
        job.eta_seconds = None
        return EventType.FAILED

    return mutate


def pause(phase: Phase) -> Mutation:
    """The change that stops a job for review after `phase`; its outputs so far are kept."""
    what = "transcript" if phase == Phase.TRANSCRIBING else "translation"

    def mutate(job: JobRecord) -> EventType:
        job.status = Status.AWAITING_REVIEW
        job.progress = max(job.progress, overall_percentage(phase, 1.0))
        job.current_step = f"Awaiting review of the {what}"
        job.pause_after = [p for p in job.pause_after or [] if p != phase.value]
        job.eta_seconds = None
        return EventType.AWAITING_REVIEW

    return mutate


def cancellation(job: JobRecord) -> EventType:
    job.status = Status.CANCELLED
    job.phase = Phase.CANCELLED
    job.current_step = "Cancelled"
    job.completed_at = utcnow()
    job.eta_seconds = None
    return EventType.CANCELLED


def _taken(job: JobRecord) -> EventType:
    job.status = Status.PROCESSING
    job.started_at = job.started_at or utcnow()
    job.current_step = "Starting" if job.phase == Phase.PENDING else f"Resuming ({job.phase})"
    return EventType.UPDATED
