"""QueueDispatcher: the API replica's side of the procrastinate queue.

Submitting stores the job and defers its task in one transaction. Cancelling writes the
terminal event (every watcher, on every replica, sees it) and asks procrastinate to abort
the task; the worker also notices the cancel in the store at its next report.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import procrastinate

from .. import tracing
from ..execution import cancellation
from ..jobs import Status
from ..runner import queue_full
from ..settings import Settings
from ..store import JobEvent, JobRecord, JobStore
from ..store.store import JobIsFinal, Mutation
from .queue import enqueuer, submit_app

if TYPE_CHECKING:
    from ..metrics import Metrics

log = logging.getLogger(__name__)


class QueueDispatcher:
    def __init__(
        self, settings: Settings, store: JobStore, *, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self._app: procrastinate.App = submit_app(settings)
        self._enqueue = enqueuer(self._app)
        self._admission = asyncio.Lock()
        self._depth = 0

    async def start(self) -> None:
        self._depth = await self.store.count_with_status(Status.PENDING)

    async def stop(self) -> None:
        return None

    async def submit(self, record: JobRecord) -> tuple[JobEvent, bool]:
        async with self._admission:
            self._depth = await self.store.count_with_status(Status.PENDING)
            if self._depth >= self.settings.queue_size:
                raise queue_full(self.settings)
            # The task carries the submitter's trace to whichever worker runs it.
            trace = tracing.carrier().get(tracing.TRACEPARENT)
            enqueue = self._enqueue

            def enqueue_traced(connection: Any, job: JobRecord) -> int | None:
                return enqueue(connection, job, trace) if trace else enqueue(connection, job)

            return await self.store.create(record, enqueue_traced)

    async def requeue(self, job_id: str, mutation: Mutation) -> JobEvent | None:
        async with self._admission:
            self._depth = await self.store.count_with_status(Status.PENDING)
            if self._depth >= self.settings.queue_size:
                raise queue_full(self.settings)
            return await self.store.reopen(job_id, mutation, self._enqueue)

    async def cancel(self, job_id: str, owner: str) -> dict[str, Any]:
        record = await self.store.get(job_id, owner)  # NotFound for strangers
        try:
            await self.store.change(job_id, cancellation)
        except JobIsFinal:
            pass
        else:
            if self.metrics is not None:
                self.metrics.jobs_cancelled.labels(record.phase).inc()
            if record.task_id is not None:
                await asyncio.to_thread(self._abort, record.task_id)
        return await self.store.snapshot(job_id, owner)

    def _abort(self, task_id: int) -> None:
        try:
            with self._app.open():
                self._app.job_manager.cancel_job_by_id(task_id, abort=True)
        except Exception:  # the store already says cancelled; the worker will see it
            log.warning("could not abort procrastinate job %s", task_id, exc_info=True)

    @property
    def queue_depth(self) -> int:
        return self._depth

    @property
    def accepting(self) -> bool:
        return True  # jobs wait in PostgreSQL for any worker; health checks the store
