"""Per-user quotas: jobs in flight and open watch streams.

Both answer RESOURCE_EXHAUSTED (HTTP 429 through the bridge) with a reason and a message
saying what to do. The job quota is read from the store, so it holds across replicas
(two submissions racing may both pass); the stream quota counts this process's streams.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from octavia.errors import Reason, ResourceExhausted

from .jobs import Status
from .settings import Settings
from .store import JobStore


async def check_active_jobs(store: JobStore, settings: Settings, owner: str) -> None:
    """Refuse a new job while `owner` already has the most jobs in flight."""
    most = settings.max_active_jobs_per_user
    active = await store.count_with_status(Status.PENDING, Status.PROCESSING, owner=owner)
    if active >= most:
        raise ResourceExhausted(
            f"you already have {active} jobs pending or processing (at most {most} at once); "
            "wait for one to finish or cancel one, then retry",
            reason=Reason.TOO_MANY_JOBS,
        )


class StreamQuota:
    """Counts the open streams of each user in this process (WatchJob calls on the
    server, SSE responses in the bridge)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._open: Counter[str] = Counter()

    def open_streams(self, owner: str) -> int:
        return self._open[owner]

    def acquire(self, owner: str) -> None:
        """Take one of `owner`'s slots; RESOURCE_EXHAUSTED when none is left."""
        if self._open[owner] >= self.most:
            raise ResourceExhausted(
                f"you already have {self.most} job streams open (the most per user); "
                "close one, then retry",
                reason=Reason.TOO_MANY_STREAMS,
            )
        self._open[owner] += 1

    def release(self, owner: str) -> None:
        self._open[owner] -= 1
        if self._open[owner] <= 0:
            del self._open[owner]

    @contextmanager
    def slot(self, owner: str) -> Iterator[None]:
        """Hold one of `owner`'s slots while the block runs."""
        self.acquire(owner)
        try:
            yield
        finally:
            self.release(owner)
