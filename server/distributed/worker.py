"""`octavia worker`: runs queued jobs with the same executor as the embedded mode.

A job whose worker died (no heartbeat for `stalled_after_seconds`) is run again by another
worker, up to `max_attempts` runs; the re-run skips announcing phases already reached, so
the event stream carries on without repeats. Then it fails with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import procrastinate
import psycopg
from octavia.errors import Reason

from .. import tracing as tracing_
from .._metrics_refresh import refresh_forever
from ..artifacts import ArtifactStore
from ..engine import Engine
from ..engine.loading import load_engine
from ..execution import JobExecutor, failure
from ..metrics import Metrics
from ..settings import Settings
from ..store import JobStore
from ..tracing import Tracing
from ..webhooks import WebhookRecorder
from .queue import QUEUE_NAME, TASK_NAME, libpq_url, worker_app

log = logging.getLogger(__name__)

# The advisory lock a worker holds while it checks for stalled jobs (any constant will do,
# as long as nothing else in the database uses it).
STALLED_CHECK_LOCK = 0x6F63_7461_7669_61  # "octavia"


class Worker:
    """`metrics`/`tracing` are the serving process's when it runs the worker too; a
    standalone worker makes its own and serves `/metrics` on `metrics_port`."""

    def __init__(self, settings: Settings, engine: Engine | None = None,
                 store: JobStore | None = None, *, metrics: Metrics | None = None,
                 tracing: Tracing | None = None) -> None:
        self.settings = settings
        self._serves_metrics = metrics is None and settings.metrics_port is not None
        self.metrics = metrics if metrics is not None else Metrics()
        self._owns_tracing = tracing is None
        self.tracing = tracing if tracing is not None else Tracing.from_settings(settings)
        # Its webhooks are recorded with their events; the serving processes send them.
        self.store = store or JobStore(settings.database_url_resolved,
                                       on_event=WebhookRecorder(settings))
        self._owns_store = store is None
        self.engine = engine if engine is not None else load_engine(settings)
        self.artifacts = ArtifactStore(settings.artifacts_url_resolved,
                                       settings.artifacts_options)
        # Events reach watchers through the store's NOTIFY and each replica's relay.
        self.executor = JobExecutor(settings, self.store, lambda _event: None, self.engine,
                                    self.artifacts, threads=settings.concurrency,
                                    metrics=self.metrics, tracing=self.tracing)
        self.app = worker_app(settings, self._run_job)

    async def _run_job(self, context: Any, job_id: str, traceparent: str | None = None) -> None:
        trace = {tracing_.TRACEPARENT: traceparent} if traceparent else None
        if await self.executor.take(job_id):
            await self.executor.run(job_id, watch_store=True, trace_carrier=trace)

    async def run(self, stop: asyncio.Event) -> None:
        """Work jobs until `stop` is set."""
        metrics_server = None
        refresher: asyncio.Task[None] | None = None
        if self._serves_metrics and self.settings.metrics_port is not None:
            metrics_server = self.metrics.serve(self.settings.metrics_host,
                                                self.settings.metrics_port)
        await self.store.migrate()
        if metrics_server is not None:
            refresher = asyncio.create_task(refresh_forever(self.store, self.metrics),
                                            name="octavia-metrics")
        async with self.app.open_async():
            worker = asyncio.create_task(self.app.run_worker_async(
                queues=[QUEUE_NAME],
                concurrency=self.settings.concurrency,
                install_signal_handlers=False,
                update_heartbeat_interval=self.settings.worker_heartbeat_seconds,
                stalled_worker_timeout=self.settings.stalled_after_seconds,
                fetch_job_polling_interval=1.0,
                wait=True,
            ), name="octavia-procrastinate-worker")
            monitor = asyncio.create_task(self._retry_stalled(), name="octavia-stalled-jobs")
            try:
                await stop.wait()
            finally:
                self.executor.stop_all()
                monitor.cancel()
                worker.cancel()
                await asyncio.gather(worker, monitor, return_exceptions=True)
                await self.executor.close()
                self.engine.close()
                if refresher is not None:
                    refresher.cancel()
                    await asyncio.gather(refresher, return_exceptions=True)
                if metrics_server is not None:
                    await asyncio.to_thread(metrics_server.close)
                if self._owns_tracing:
                    self.tracing.shutdown()
                if self._owns_store:
                    self.store.close()

    async def _retry_stalled(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.settings.worker_heartbeat_seconds))
            try:
                await self.check_stalled()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking for stalled jobs failed")

    async def check_stalled(self) -> None:
        """Run again, or fail, the jobs of workers that went silent.

        One worker at a time, under a PostgreSQL advisory lock: two that saw the same
        stalled job would both retry it (counting two attempts, or queuing it again after
        a live worker had taken it) or both fail it. The lock goes with the connection, so
        a checker that dies holds it no longer."""
        url = libpq_url(self.settings.database_url_resolved)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                          connect_timeout=10) as connection:
            cursor = await connection.execute("SELECT pg_try_advisory_lock(%s)",
                                              (STALLED_CHECK_LOCK,))
            row = await cursor.fetchone()
            if row is None or not row[0]:
                return  # another worker is checking right now
            manager = self.app.job_manager
            stalled = await manager.get_stalled_jobs(
                task_name=TASK_NAME,
                seconds_since_heartbeat=self.settings.stalled_after_seconds,
            )
            for job in stalled:
                await self._recover(manager, job)

    async def _recover(self, manager: Any, job: procrastinate.jobs.Job) -> None:
        job_id = str(job.task_kwargs.get("job_id"))
        if job.attempts + 1 < self.settings.max_attempts:
            log.warning("job %s: its worker stopped; running it again", job_id)
            await manager.retry_job(job)
            return
        log.error("job %s: its worker stopped %d times; giving up", job_id, job.attempts + 1)
        record = await self.store.get(job_id)
        failed = await self.executor.change(job_id, failure(
            record.phase,
            f"its worker stopped {job.attempts + 1} times while {record.phase}; "
            "submit it again",
            Reason.INTERRUPTED, True))
        await manager.finish_job(job, status=procrastinate.jobs.Status.FAILED, delete_job=False)
        if failed is not None:  # not when it had ended anyway (e.g. completed, then died)
            self.executor.count_failure(Reason.INTERRUPTED, record.phase)
            await self.executor.discard(job_id, record.version)
