"""The procrastinate side: the app, the task that runs a job, and deferring it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import procrastinate

from ..settings import Settings
from ..store import JobRecord

TASK_NAME = "octavia.run_job"
QUEUE_NAME = "dubbing"


def libpq_url(sqlalchemy_url: str) -> str:
    """`postgresql+psycopg://…` (SQLAlchemy) → `postgresql://…` (libpq)."""
    scheme, _, rest = sqlalchemy_url.partition("://")
    return f"{scheme.split('+', 1)[0]}://{rest}"


def submit_app(settings: Settings) -> procrastinate.App:
    """An app that only defers, on the caller's own connection (no pool of its own)."""
    connector = procrastinate.SyncPsycopgConnector(
        conninfo=libpq_url(settings.database_url_resolved)
    )
    return procrastinate.App(connector=connector)


def worker_app(
    settings: Settings, run_job: Callable[[Any, str], Awaitable[None]]
) -> procrastinate.App:
    """An app whose task runs jobs with `run_job(context, job_id)`."""
    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(settings.database_url_resolved))
    app = procrastinate.App(connector=connector)
    app.task(name=TASK_NAME, queue=QUEUE_NAME, pass_context=True)(run_job)
    return app


def enqueuer(app: procrastinate.App) -> Callable[..., int | None]:
    """The store's `enqueue` hook: defer the job's task inside the storing transaction;
    a W3C `traceparent`, when given, rides along so the worker continues the trace."""

    def enqueue(connection: Any, record: JobRecord, traceparent: str | None = None) -> int | None:
        deferrer = app.configure_task(TASK_NAME, queue=QUEUE_NAME, connection=connection)
        if traceparent:
            return int(deferrer.defer(job_id=record.id, traceparent=traceparent))
        return int(deferrer.defer(job_id=record.id))

    return enqueue
