"""The tables: one row per job, and the append-only event log that WatchJob replays."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _timestamp(**kwargs: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kwargs))


class JobRecord(SQLModel, table=True):
    """A job's current state. Every change to it also appends a JobEvent."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("owner", "request_id", name="uq_jobs_owner_request_id"),)

    id: str = Field(primary_key=True, max_length=36)
    owner: str = Field(index=True, max_length=255)
    request_id: str | None = Field(default=None, max_length=255)
    status: str = Field(index=True, max_length=16)
    phase: str = Field(max_length=16)
    progress: float = 0.0
    current_step: str = ""
    created_at: datetime = _timestamp(nullable=False, index=True)
    started_at: datetime | None = _timestamp(nullable=True)
    completed_at: datetime | None = _timestamp(nullable=True)
    error_message: str | None = None
    error_reason: str | None = Field(default=None, max_length=64)
    error_retryable: bool = False
    error_phase: str | None = Field(default=None, max_length=16)
    output_file: str | None = None
    source_language: str | None = Field(default=None, max_length=16)
    target_language: str = Field(max_length=16)
    source_filename: str = ""
    media_path: str = ""
    """Where the source media sits on the server (an upload copy or an allowed path)."""
    media_owned: bool = True
    """Whether media_path is our own upload copy, removed when the job ends."""
    mix_mode: str = "ducked"
    media_duration: float | None = None
    eta_seconds: float | None = None
    artifacts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    sequence: int = 0
    """Sequence of the latest event; events of a job are numbered 1, 2, 3…"""
    task_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    """The procrastinate job that runs this job, with the procrastinate queue."""
    pause_after: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    """Phases still ahead after which the job pauses for review (AWAITING_REVIEW)."""
    webhook_url: str | None = None
    """Where the job's webhooks go (terminal states, AWAITING_REVIEW)."""
    version: int = 1
    """Version of the outputs being made: 1, then +1 per re-dub."""
    versions: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    """Every finished version: {version, completed_at, output_file, artifacts}."""

    @property
    def is_terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class JobEvent(SQLModel, table=True):
    """One change of one job, with the job's snapshot right after it."""

    __tablename__ = "job_events"

    job_id: str = Field(primary_key=True, foreign_key="jobs.id", max_length=36)
    sequence: int = Field(primary_key=True)
    type: str = Field(max_length=16)
    snapshot: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _timestamp(nullable=False)


class WebhookDelivery(SQLModel, table=True):
    """One event of a job to POST to its webhook URL, written in the event's transaction.

    A sender claims a due row by setting `lease_until` in one conditional UPDATE, so two
    processes never make the same attempt; each attempt is appended to `attempts`.
    """

    __tablename__ = "webhook_deliveries"

    id: str = Field(primary_key=True, max_length=36)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=36)
    sequence: int
    """The event's sequence in the job's log; its snapshot is the body's `job`."""
    event_type: str = Field(max_length=16)
    url: str
    state: str = Field(index=True, max_length=16)
    """`pending`, `delivered` or `failed`."""
    attempts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    """Every attempt so far, oldest first: {at (ISO-8601), status_code (0: no answer), error}."""
    created_at: datetime = _timestamp(nullable=False)
    next_attempt_at: datetime | None = _timestamp(nullable=True, index=True)
    """When the next attempt is due; None once delivered or failed."""
    lease_until: datetime | None = _timestamp(nullable=True)
    """While set and in the future, one sender is making an attempt."""
