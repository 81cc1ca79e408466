"""In-process fan-out of job events to live watchers.

One subscription list per job: publishing costs one loop over that job's watchers, no
database poll per watcher. Each watcher has a buffer of `limit` events (`watch_buffer`):
a watcher that is merely a few events behind (one replaying the log after a reconnect)
gets every event; once its buffer is full, a new progress event replaces the progress
event last in it (each event carries a full snapshot, so nothing is lost but intermediate
ticks), which bounds the buffer of a watcher that stops reading. Phase changes and
terminal events are never merged or dropped.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .jobs import EventType
from .store import JobEvent

if TYPE_CHECKING:
    from .metrics import Metrics

T = TypeVar("T")

ENCODED_KEPT = 256
"""Recent events whose wire form `EventBus.encoded` keeps (a few per live job suffice:
watchers of a job are at most a few events apart)."""


class Subscription:
    """A watcher's buffer of one job's events, in publish order."""

    def __init__(self, job_id: str, limit: int = 64,
                 on_coalesce: Callable[[], None] | None = None) -> None:
        self.job_id = job_id
        self.limit = limit
        self._on_coalesce = on_coalesce
        self._buffer: deque[JobEvent] = deque()
        self._ready = asyncio.Event()
        self.coalesced = 0

    def push(self, event: JobEvent) -> None:
        if (
            len(self._buffer) >= self.limit
            and EventType(event.type).is_coalescible
            and EventType(self._buffer[-1].type).is_coalescible
        ):
            self._buffer[-1] = event
            self.coalesced += 1
            if self._on_coalesce is not None:
                self._on_coalesce()
        else:
            self._buffer.append(event)
        self._ready.set()

    async def get(self) -> JobEvent:
        while not self._buffer:
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()

    def __len__(self) -> int:
        return len(self._buffer)


class EventBus:
    def __init__(self, metrics: Metrics | None = None, buffer: int = 64) -> None:
        self.buffer = buffer
        """Events a watcher may fall behind by before its progress events coalesce."""
        self._watchers: dict[str, set[Subscription]] = defaultdict(set)
        self._metrics = metrics
        self._encoded: dict[tuple[str, int], Any] = {}

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[Subscription]:
        subscription = Subscription(
            job_id, self.buffer,
            self._metrics.events_coalesced.inc if self._metrics is not None else None,
        )
        self._watchers[job_id].add(subscription)
        try:
            yield subscription
        finally:
            watchers = self._watchers.get(job_id)
            if watchers is not None:
                watchers.discard(subscription)
                if not watchers:
                    del self._watchers[job_id]

    def publish(self, event: JobEvent) -> None:
        if self._metrics is not None:
            self._metrics.events_published.labels(event.type).inc()
        for subscription in self._watchers.get(event.job_id, ()):
            subscription.push(event)

    def publish_all(self, events: list[JobEvent]) -> None:
        for event in events:
            self.publish(event)

    def encoded(self, event: JobEvent, encode: Callable[[JobEvent], T]) -> T:
        """`encode(event)`, computed once per event, not once per watcher: a published
        event is never changed, and N watchers of a job send the same message."""
        key = (event.job_id, event.sequence)
        found = self._encoded.get(key)
        if found is None:
            found = self._encoded[key] = encode(event)
            if len(self._encoded) > ENCODED_KEPT:
                del self._encoded[next(iter(self._encoded))]  # the oldest
        return cast(T, found)

    def watcher_count(self, job_id: str | None = None) -> int:
        if job_id is not None:
            return len(self._watchers.get(job_id, ()))
        return sum(len(w) for w in self._watchers.values())
