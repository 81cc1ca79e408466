"""Signed webhooks: recorded with their event, sent by a sender in every serving process.

```
 JobStore._event ──(same transaction)──▶ webhook_deliveries row (pending, due now)
        │ after commit: wake                          ▲ claim: UPDATE … SET lease_until
        ▼                                             │ WHERE pending AND due AND unleased
 WebhookSender loop ── POST, signed ──▶ receiver      │
        └── attempt recorded: delivered / retry at now + backoff (longer if the receiver
            asks, by Retry-After, up to the backoff cap) / failed after max attempts
```

A delivery is written in the transaction that stores its event, so a process dying right
after cannot lose it. Any process with the store may send it: a sender claims a due row
with one conditional UPDATE (a lease), so two replicas never make the same attempt; a
sender that dies mid-attempt leaves the lease to expire and another one tries again.
Delivery is therefore at least once: receivers deduplicate on `Octavia-Delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlparse

import httpx
from octavia import webhooks as signing
from octavia.jobjson import job_to_json
from octavia.v1 import jobs_pb2 as pb
from sqlalchemy import event as sa_event
from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from . import webhook_target
from .convert import job_to_proto
from .jobs import EventType
from .settings import Settings
from .store import JobEvent, JobRecord, JobStore
from .store.models import WebhookDelivery, utcnow

log = logging.getLogger(__name__)

# The events a job's webhook is called for.
WEBHOOK_EVENTS = frozenset({EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED,
                            EventType.AWAITING_REVIEW})

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATE_TO_PB = {
    PENDING: pb.WEBHOOK_DELIVERY_STATE_PENDING,
    DELIVERED: pb.WEBHOOK_DELIVERY_STATE_DELIVERED,
    FAILED: pb.WEBHOOK_DELIVERY_STATE_FAILED,
}

BATCH = 16
"""Deliveries one sender claims and sends at once."""
LEASE_MARGIN_SECONDS = 30.0
"""A claim outlives the request timeout by this much before another sender may retry."""
MAX_ERROR = 300
_WAKE_PENDING = "octavia_webhook_wake"


def signing_secret(settings: Settings) -> str | None:
    """The key webhooks are signed with; None when webhooks are off."""
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    return secret or None


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a receiver asked to wait before the next attempt (`Retry-After`: a number of
    seconds or an HTTP date); None when it did not ask, or asked in a form we cannot read."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff(settings: Settings, failed_attempts: int) -> float:
    """Seconds to wait after the `failed_attempts`-th failure: base, 2 base, 4 base... capped."""
    delay = settings.webhook_backoff_seconds * 2 ** max(failed_attempts - 1, 0)
    return float(min(delay, settings.webhook_backoff_max_seconds))


class WebhookRecorder:
    """The store's event hook: adds a pending delivery for each webhook event of a job that
    has a URL (its own, or its owner's default). `on_commit` runs after the transaction
    commits (on a database thread), to wake this process's sender."""

    def __init__(self, settings: Settings, on_commit: Callable[[], None] | None = None) -> None:
        self.defaults = dict(settings.webhook_urls)
        self.on_commit = on_commit

    def url_for(self, record: JobRecord) -> str | None:
        return record.webhook_url or self.defaults.get(record.owner) or None

    def __call__(self, session: Session, record: JobRecord, event: JobEvent) -> None:
        if event.type not in WEBHOOK_EVENTS:
            return
        url = self.url_for(record)
        if url is None:
            return
        now = utcnow()
        session.add(WebhookDelivery(
            id=str(uuid.uuid4()), job_id=record.id, sequence=event.sequence,
            event_type=event.type, url=url, state=PENDING, attempts=[], created_at=now,
            next_attempt_at=now))
        if self.on_commit is not None and not session.info.get(_WAKE_PENDING):
            session.info[_WAKE_PENDING] = True
            sa_event.listen(session, "after_commit", self._committed, once=True)

    def _committed(self, session: Session) -> None:
        session.info.pop(_WAKE_PENDING, None)
        if self.on_commit is not None:
            self.on_commit()


@dataclass(frozen=True)
class Claim:
    """A delivery this sender holds the lease of, with what its attempt needs."""

    id: str
    job_id: str
    sequence: int
    event_type: str
    url: str
    lease_until: datetime
    attempts: list[dict[str, Any]]
    """The attempts before this one (no one else changes them while the lease holds)."""
    body: bytes | None
    """The signed body; None when the job's event is gone."""


class Answer(NamedTuple):
    """How one attempt went."""

    status_code: int
    """The receiver's HTTP status; 0 when no answer came."""
    error: str
    """Why it failed; empty when delivered."""
    wait: float | None = None
    """Seconds the receiver asked us to wait (`Retry-After`)."""
    final: bool = False
    """Trying again cannot help (the event is gone, the address is refused)."""


class WebhookSender:
    """Sends due deliveries: woken by this process's new ones, polling for the others."""

    def __init__(self, settings: Settings, store: JobStore,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.store = store
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Look for due deliveries now. Safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_seconds, follow_redirects=False,
            transport=self._transport, headers={"User-Agent": "octavia-webhooks/1"})
        self._task = asyncio.create_task(self._run(), name="octavia-webhooks")

    async def stop(self, grace: float = 2.0) -> None:
        """Let attempts in flight finish for up to `grace` seconds, then cancel them (their
        leases expire and another sender tries again)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if not done:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = None

    async def _run(self) -> None:
        poll = self.settings.webhook_poll_seconds
        while not self._stopping:
            self._wake.clear()
            wait = poll
            try:
                claims = await self.store.write_with(self._claim)
                if claims:
                    await asyncio.gather(*(self._attempt(claim) for claim in claims))
                    continue  # more may be due
                due_in = await self.store.read_with(_seconds_to_next)
                if due_in is not None:
                    wait = min(poll, max(due_in, 0.01))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook sender: the store failed; trying again in %.1f s", poll)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _claim(self, session: Session) -> list[Claim]:
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.webhook_timeout_seconds
                                + LEASE_MARGIN_SECONDS)
        due = (col(WebhookDelivery.state) == PENDING) & (col(WebhookDelivery.next_attempt_at)
                                                          <= now)
        free = or_(col(WebhookDelivery.lease_until).is_(None),
                   col(WebhookDelivery.lease_until) < now)
        candidates = session.exec(
            select(WebhookDelivery.id).where(due, free)
            .order_by(col(WebhookDelivery.next_attempt_at)).limit(BATCH)).all()
        session.commit()  # a read transaction must not turn into a write one (SQLite)
        claimed: list[str] = []
        for delivery_id in candidates:
            # The condition is evaluated again under the row's lock: of two senders racing
            # for a row, exactly one updates it. One commit per row keeps lock order moot.
            result = session.execute(
                update(WebhookDelivery)
                .where(col(WebhookDelivery.id) == delivery_id, due, free)
                .values(lease_until=lease)
                .execution_options(synchronize_session=False))
            session.commit()
            if getattr(result, "rowcount", 0) == 1:
                claimed.append(delivery_id)
        return [self._prepare(session, session.get_one(WebhookDelivery, delivery_id), lease)
                for delivery_id in claimed]

    @staticmethod
    def _prepare(session: Session, row: WebhookDelivery, lease: datetime) -> Claim:
        event = session.get(JobEvent, (row.job_id, row.sequence))
        body = None
        if event is not None:
            try:
                job = job_to_json(job_to_proto(event.snapshot))
            except Exception:  # a snapshot from an older release: send it as stored
                log.warning("webhook %s: job %s's snapshot sent as stored", row.id, row.job_id)
                job = dict(event.snapshot)
            payload = {"delivery_id": row.id, "event_type": row.event_type,
                       "sequence": row.sequence, "job": job}
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return Claim(id=row.id, job_id=row.job_id, sequence=row.sequence,
                     event_type=row.event_type, url=row.url, lease_until=lease,
                     attempts=list(row.attempts or []), body=body)

    async def _attempt(self, claim: Claim) -> None:
        try:
            answer = await self._post(claim)
            error = answer.error
            attempt = {"at": utcnow().isoformat(), "status_code": answer.status_code,
                       "error": error}
            state = await self.store.write_with(
                lambda session: self._record(session, claim, attempt, answer.final,
                                             answer.wait))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook %s of job %s: the attempt could not be recorded",
                          claim.id, claim.job_id)
            return
        host = urlparse(claim.url).hostname
        if state == DELIVERED:
            log.info("webhook %s (%s) of job %s delivered to %s", claim.id, claim.event_type,
                     claim.job_id, host)
        elif state is not None:
            log.warning("webhook %s (%s) of job %s to %s: %s%s", claim.id, claim.event_type,
                        claim.job_id, host, error,
                        "; giving up" if state == FAILED else "; will retry")

    async def _post(self, claim: Claim) -> Answer:
        """Send one attempt (to a public address unless private ones are allowed)."""
        secret = signing_secret(self.settings)
        if claim.body is None:
            return Answer(0, "the job's event no longer exists", final=True)
        if secret is None:  # never send anything unsigned
            return Answer(0, "no OCTAVIA_WEBHOOK_SECRET is configured to sign it")
        assert self._client is not None
        target = webhook_target.Target(claim.url)
        if not self.settings.webhook_allow_private_networks:
            try:
                target = await webhook_target.pin(claim.url)
            except webhook_target.NotPublic as error:
                return Answer(0, f"{error}; {webhook_target.ALLOW_SETTING}=true allows it",
                              final=True)
            except OSError as error:
                return Answer(0, f"cannot resolve the receiver's host: {error}")
        headers = {
            **target.headers,
            "Content-Type": "application/json",
            signing.SIGNATURE_HEADER: signing.sign(claim.body, secret),
            signing.DELIVERY_HEADER: claim.id,
            signing.EVENT_HEADER: claim.event_type,
        }
        try:
            # Streamed and never read: a receiver's answer body is of no interest.
            async with self._client.stream("POST", target.url, content=claim.body,
                                           headers=headers,
                                           extensions=target.extensions) as response:
                status = response.status_code
                wait = retry_after(response.headers.get("retry-after"), utcnow())
        except httpx.HTTPError as error:
            return Answer(0, _describe(error))
        if 200 <= status < 300:
            return Answer(status, "")
        return Answer(status, f"the receiver answered HTTP {status}", wait)

    def _record(self, session: Session, claim: Claim, attempt: dict[str, Any],
                final: bool, asked_wait: float | None) -> str | None:
        """Append the attempt and decide what follows, in one conditional UPDATE; None when
        the lease was lost (another sender owns the row now and records its own attempt).

        The next attempt waits the backoff, or longer when the receiver asked for longer
        (`Retry-After`), though never past `webhook_backoff_max_seconds`."""
        attempts = [*claim.attempts, attempt]
        state, next_attempt_at = PENDING, None
        if not attempt["error"]:
            state = DELIVERED
        elif final or len(attempts) >= self.settings.webhook_max_attempts:
            state = FAILED
        else:
            wait = backoff(self.settings, len(attempts))
            if asked_wait is not None:
                wait = max(wait, min(asked_wait, self.settings.webhook_backoff_max_seconds))
            next_attempt_at = utcnow() + timedelta(seconds=wait)
        result = session.execute(
            update(WebhookDelivery)
            .where(col(WebhookDelivery.id) == claim.id,
                   col(WebhookDelivery.state) == PENDING,
                   col(WebhookDelivery.lease_until) == claim.lease_until)
            .values(attempts=attempts, state=state, next_attempt_at=next_attempt_at,
                    lease_until=None)
            .execution_options(synchronize_session=False))
        session.commit()
        return state if getattr(result, "rowcount", 0) == 1 else None


def _seconds_to_next(session: Session) -> float | None:
    """Seconds until the earliest unleased pending delivery is due; None when none waits."""
    now = utcnow()
    earliest = session.exec(
        select(WebhookDelivery.next_attempt_at).where(
            col(WebhookDelivery.state) == PENDING,
            or_(col(WebhookDelivery.lease_until).is_(None),
                col(WebhookDelivery.lease_until) < now))
        .order_by(col(WebhookDelivery.next_attempt_at)).limit(1)).first()
    if earliest is None:
        return None
    return (_utc(earliest) - now).total_seconds()


def deliveries_of(job_id: str) -> Callable[[Session], list[WebhookDelivery]]:
    """A read (for `JobStore.read_with`) of a job's deliveries, oldest first."""

    def read(session: Session) -> list[WebhookDelivery]:
        rows = session.exec(
            select(WebhookDelivery).where(col(WebhookDelivery.job_id) == job_id)
            .order_by(col(WebhookDelivery.sequence), col(WebhookDelivery.created_at))).all()
        for row in rows:
            session.expunge(row)
        return list(rows)

    return read


def delivery_to_proto(row: WebhookDelivery) -> pb.WebhookDelivery:
    message = pb.WebhookDelivery(
        delivery_id=row.id, event_type=f"EVENT_TYPE_{row.event_type.upper()}",
        sequence=row.sequence, url=row.url, state=STATE_TO_PB[row.state])
    for attempt in row.attempts or []:
        entry = message.attempts.add(status_code=int(attempt.get("status_code") or 0),
                                     error=str(attempt.get("error") or ""))
        entry.at.FromDatetime(datetime.fromisoformat(attempt["at"]))
    if row.state == PENDING and row.next_attempt_at is not None:
        message.next_attempt_at.FromDatetime(_utc(row.next_attempt_at))
    return message


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _describe(error: httpx.HTTPError) -> str:
    kind = type(error).__name__
    text = str(error) or "no details"
    return f"{kind}: {text}"[:MAX_ERROR]
