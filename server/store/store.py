"""JobStore: every change of a job is one transaction that updates the row and appends an event.

SQLModel sessions are synchronous, so each public method runs its work on a small thread
pool and is awaited; the event loop never waits on the database. Writers are serialised
per process (SQLite allows one writer at a time anyway) and lock the job row where the
database supports it (PostgreSQL), so sequences never collide across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from octavia.errors import NotFound
from sqlalchemy import event, func, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, create_engine, or_, select

from ..jobs import EventType, Status
from .migrate import upgrade
from .models import JobEvent, JobRecord, utcnow

T = TypeVar("T")

# PostgreSQL channel on which every stored event is announced as "<job_id>:<sequence>".
EVENTS_CHANNEL = "octavia_job_events"

# Called inside the transaction that stores a new job, with the driver's connection:
# enqueues the job's task so that there is no job without a task, nor a task without a job.
Enqueue = Callable[[Any, JobRecord], int | None]

# A mutation returns the event type it amounts to, or None for "nothing changed".
Mutation = Callable[[JobRecord], EventType | None]

# Called inside the transaction that stores each event (after the event is added), so what
# it writes (a webhook delivery) commits or rolls back with the event.
EventHook = Callable[[Session, JobRecord, JobEvent], None]


class JobIsFinal(Exception):
    """The job reached a terminal state; nothing may change it any more."""


def snapshot_of(record: JobRecord, queue_position: int = 0) -> dict[str, Any]:
    """The public view of a job, as stored in each event and sent to clients."""
    return {
        "job_id": record.id,
        "status": record.status,
        "phase": record.phase,
        "progress_percentage": record.progress,
        "current_step": record.current_step,
        "created_at": _iso(record.created_at),
        "started_at": _iso(record.started_at),
        "completed_at": _iso(record.completed_at),
        "error_message": record.error_message,
        "error_reason": record.error_reason,
        "error_retryable": record.error_retryable,
        "error_phase": record.error_phase,
        "output_file": record.output_file,
        "source_language": record.source_language,
        "target_language": record.target_language,
        "queue_position": queue_position,
        "artifacts": list(record.artifacts or []),
        "request_id": record.request_id,
        "source_filename": record.source_filename,
        "eta_seconds": record.eta_seconds,
        "media_duration_seconds": record.media_duration,
        "mix_mode": record.mix_mode,
        "pause_after": list(record.pause_after or []),
        "webhook_url": record.webhook_url,
        "version": record.version,
        "sequence": record.sequence,
    }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC.
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def create_db_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class JobStore:
    def __init__(self, url: str, *, threads: int = 4, on_event: EventHook | None = None) -> None:
        self.url = url
        self.on_event = on_event
        """Runs in every event's transaction (see EventHook); set before the store is used."""
        self.engine = create_db_engine(url)
        self.notifies = self.engine.dialect.name == "postgresql"
        """Whether every event is also announced on EVENTS_CHANNEL (other processes listen)."""
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="octavia-db")
        self._write_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------

    async def migrate(self) -> None:
        await self._run(upgrade, self.engine)

    async def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            await self._run(self._ping)
        except Exception:
            return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()

    # --- reads -------------------------------------------------------------------------

    async def get(self, job_id: str, owner: str | None = None) -> JobRecord:
        """The job, or NotFound when it does not exist or belongs to someone else."""
        return await self._run(self._get, job_id, owner)

    async def snapshot(self, job_id: str, owner: str | None = None) -> dict[str, Any]:
        return await self._run(self._snapshot, job_id, owner)

    async def events_after(self, job_id: str, sequence: int) -> list[JobEvent]:
        return await self._run(self._events_after, job_id, sequence)

    async def list_jobs(
        self, owner: str, limit: int, before: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        return await self._run(self._list_jobs, owner, limit, before)

    async def find_request(self, owner: str, request_id: str) -> JobEvent | None:
        """The job `owner` already submitted under `request_id`, as a snapshot event."""
        return await self._run(self._find_request, owner, request_id)

    async def ids_with_status(self, *statuses: Status) -> list[str]:
        """Job ids in the given statuses, oldest first."""
        return await self._run(self._ids_with_status, statuses)

    async def count_with_status(self, *statuses: Status, owner: str | None = None) -> int:
        """Jobs in the given statuses (only `owner`'s, when given)."""
        return await self._run(self._count_with_status, statuses, owner)

    # --- writes ------------------------------------------------------------------------

    async def create(
        self, record: JobRecord, enqueue: Enqueue | None = None
    ) -> tuple[JobEvent, bool]:
        """Store a new job and its SUBMITTED event (and, with `enqueue`, its task).

        Returns (event, created). When the owner already used `request_id`, nothing is
        written and the existing job's latest snapshot comes back with created=False.
        """
        return await self._run(self._create, record, enqueue)

    async def change(self, job_id: str, mutation: Mutation) -> JobEvent | None:
        """Apply `mutation` to the job in one transaction and append the event it names.

        The mutation sees the locked, current row; returning None means "no change" and
        writes nothing. A job in a terminal state raises JobIsFinal.
        """
        return await self._run(self._change, job_id, mutation)

    async def reopen(
        self, job_id: str, mutation: Mutation, enqueue: Enqueue | None = None
    ) -> JobEvent | None:
        """Like `change`, but the job may have ended (a completed job re-dubbed); with
        `enqueue`, the job's new task is deferred in the same transaction."""
        return await self._run(self._change, job_id, mutation, enqueue, True)

    async def with_locked(self, job_id: str, owner: str, work: Callable[[JobRecord], T]) -> T:
        """Run `work` on the owner's job while its row is locked (and this process's
        writers wait): edits of the job's files are not interleaved. Writes no event."""
        return await self._run(self._with_locked, job_id, owner, work)

    async def touch_pending(self, job_ids: Iterable[str]) -> list[JobEvent]:
        """Append an UPDATED event to each pending job whose queue position moved."""
        return await self._run(self._touch_pending, list(job_ids))

    async def read_with(self, work: Callable[[Session], T]) -> T:
        """Run `work` with a session of its own on the store's threads (other tables)."""
        return await self._run(self._in_session, work, False)

    async def write_with(self, work: Callable[[Session], T]) -> T:
        """Like `read_with`, serialised with this process's other writers; `work` commits."""
        return await self._run(self._in_session, work, True)

    # --- sync implementations (run on the pool) ----------------------------------------

    def _in_session(self, work: Callable[[Session], T], write: bool) -> T:
        with (self._write_lock if write else contextlib.nullcontext()), \
                Session(self.engine, expire_on_commit=False) as session:
            return work(session)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args))

    def _ping(self) -> None:
        with Session(self.engine) as session:
            session.exec(select(func.count()).select_from(JobRecord).where(JobRecord.id == ""))

    def _get(self, job_id: str, owner: str | None) -> JobRecord:
        with Session(self.engine, expire_on_commit=False) as session:
            record = session.get(JobRecord, job_id)
            if record is None or (owner is not None and record.owner != owner):
                raise NotFound(f"job {job_id} not found")
            session.expunge(record)
            return record

    def _snapshot(self, job_id: str, owner: str | None) -> dict[str, Any]:
        with Session(self.engine) as session:
            record = session.get(JobRecord, job_id)
            if record is None or (owner is not None and record.owner != owner):
                raise NotFound(f"job {job_id} not found")
            return snapshot_of(record, self._queue_position(session, record))

    def _events_after(self, job_id: str, sequence: int) -> list[JobEvent]:
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.sequence > sequence)
                .order_by(JobEvent.sequence)  # type: ignore[arg-type]
            ).all()
            for row in rows:
                session.expunge(row)
            return list(rows)

    def _list_jobs(
        self, owner: str, limit: int, before: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            query = select(JobRecord).where(JobRecord.owner == owner)
            if before is not None:
                created, job_id = before
                query = query.where(
                    or_(
                        JobRecord.created_at < created,
                        (JobRecord.created_at == created) & (JobRecord.id < job_id),
                    )
                )
            query = query.order_by(
                JobRecord.created_at.desc(), JobRecord.id.desc()  # type: ignore[attr-defined]
            ).limit(limit)
            return [
                snapshot_of(r, self._queue_position(session, r)) for r in session.exec(query)
            ]

    def _ids_with_status(self, statuses: tuple[Status, ...]) -> list[str]:
        with Session(self.engine) as session:
            query = (
                select(JobRecord.id)
                .where(JobRecord.status.in_([s.value for s in statuses]))  # type: ignore[attr-defined]
                .order_by(JobRecord.created_at, JobRecord.id)  # type: ignore[arg-type]
            )
            return list(session.exec(query))

    def _count_with_status(self, statuses: tuple[Status, ...], owner: str | None = None) -> int:
        with Session(self.engine) as session:
            query = select(func.count()).where(
                JobRecord.status.in_([s.value for s in statuses])  # type: ignore[attr-defined]
            )
            if owner is not None:
                query = query.where(JobRecord.owner == owner)
            return int(session.exec(query).one())

    def _create(self, record: JobRecord, enqueue: Enqueue | None) -> tuple[JobEvent, bool]:
        with self._write_lock:
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    record.sequence = 1
                    session.add(record)
                    session.flush()
                    if enqueue is not None:
                        self._defer(session, record, enqueue)
                        session.add(record)
                    event = self._event(session, record, EventType.SUBMITTED)
                    session.commit()
                    session.expunge(event)
                    return event, True
            except IntegrityError:
                if record.request_id is None:
                    raise
        existing = self._find_request(record.owner, record.request_id)
        if existing is None:  # the conflicting row vanished again; let the caller retry
            raise RuntimeError("request_id conflict without a matching job")
        return existing, False

    def _find_request(self, owner: str, request_id: str) -> JobEvent | None:
        with Session(self.engine) as session:
            existing = session.exec(
                select(JobRecord).where(
                    JobRecord.owner == owner, JobRecord.request_id == request_id
                )
            ).one_or_none()
            if existing is None:
                return None
            position = self._queue_position(session, existing)
            return JobEvent(
                job_id=existing.id,
                sequence=existing.sequence,
                type=EventType.SUBMITTED.value,
                snapshot=snapshot_of(existing, position),
                created_at=utcnow(),
            )

    def _change(self, job_id: str, mutation: Mutation, enqueue: Enqueue | None = None,
                reopen: bool = False) -> JobEvent | None:
        with self._write_lock, Session(self.engine, expire_on_commit=False) as session:
            record = session.exec(
                select(JobRecord).where(JobRecord.id == job_id).with_for_update()
            ).one_or_none()
            if record is None:
                raise NotFound(f"job {job_id} not found")
            if record.is_terminal and not reopen:
                raise JobIsFinal(job_id)
            kind = mutation(record)
            if kind is None:
                return None
            record.sequence += 1
            if enqueue is not None:
                session.flush()
                self._defer(session, record, enqueue)
            session.add(record)
            event = self._event(session, record, kind)
            session.commit()
            session.expunge(event)
            return event

    @staticmethod
    def _defer(session: Session, record: JobRecord, enqueue: Enqueue) -> None:
        """Defer the job's task on the transaction's own connection, and remember it."""
        record.task_id = enqueue(session.connection().connection.driver_connection, record)

    def _with_locked(self, job_id: str, owner: str, work: Callable[[JobRecord], T]) -> T:
        with self._write_lock, Session(self.engine, expire_on_commit=False) as session:
            record = session.exec(
                select(JobRecord).where(JobRecord.id == job_id).with_for_update()
            ).one_or_none()
            if record is None or record.owner != owner:
                raise NotFound(f"job {job_id} not found")
            session.expunge(record)
            result = work(record)
            session.commit()
            return result

    def _touch_pending(self, job_ids: list[str]) -> list[JobEvent]:
        events = []
        with self._write_lock, Session(self.engine, expire_on_commit=False) as session:
            for job_id in job_ids:
                record = session.get(JobRecord, job_id, with_for_update=True)
                if record is None or record.status != Status.PENDING:
                    continue
                record.sequence += 1
                session.add(record)
                events.append(self._event(session, record, EventType.UPDATED))
            session.commit()
            for event in events:
                session.expunge(event)
        return events

    def _event(self, session: Session, record: JobRecord, kind: EventType) -> JobEvent:
        event = JobEvent(
            job_id=record.id,
            sequence=record.sequence,
            type=kind.value,
            snapshot=snapshot_of(record, self._queue_position(session, record)),
            created_at=utcnow(),
        )
        session.add(event)
        if self.on_event is not None:
            self.on_event(session, record, event)
        if self.notifies:  # delivered to listeners when the transaction commits
            session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": EVENTS_CHANNEL, "payload": f"{record.id}:{record.sequence}"},
            )
        return event

    @staticmethod
    def _queue_position(session: Session, record: JobRecord) -> int:
        if record.status != Status.PENDING:
            return 0
        ahead = select(func.count()).where(
            JobRecord.status == Status.PENDING.value,
            or_(
                JobRecord.created_at < record.created_at,
                (JobRecord.created_at == record.created_at) & (JobRecord.id < record.id),
            ),
        )
        return int(session.exec(ahead).one())
