"""EventRelay: PostgreSQL NOTIFY → read the new events from the log → this replica's bus.

Events are read from the log, not taken from the notification, so a watcher gets them in
sequence order with nothing skipped even when NOTIFYs arrive late or bunched. Jobs nobody
here watches cost one ignored notification.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg

from ..events import EventBus
from ..store import JobStore
from ..store.store import EVENTS_CHANNEL
from .queue import libpq_url

log = logging.getLogger(__name__)


class EventRelay:
    def __init__(self, store: JobStore, bus: EventBus) -> None:
        self._store = store
        self._bus = bus
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._published: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="octavia-event-relay")
        await asyncio.wait_for(self._ready.wait(), timeout=30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event relay lost its connection; reconnecting")
                self._ready.clear()
                await asyncio.sleep(1.0)

    async def _listen(self) -> None:
        url = libpq_url(self._store.url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
            await connection.execute(f"LISTEN {EVENTS_CHANNEL}")
            self._ready.set()
            # After a reconnect, catch up every job still watched here.
            for job_id in list(self._published):
                await self._forward(job_id, None)
            async for notification in connection.notifies():
                job_id, _, sequence = notification.payload.partition(":")
                await self._forward(job_id, int(sequence or 0))

    async def _forward(self, job_id: str, sequence: int | None) -> None:
        if self._bus.watcher_count(job_id) == 0:
            self._published.pop(job_id, None)
            self._locks.pop(job_id, None)
            return
        lock = self._locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            last = self._published.get(job_id)
            if last is None:
                last = (sequence or 1) - 1
            if sequence is not None and sequence <= last:
                return
            for event in await self._store.events_after(job_id, last):
                self._bus.publish(event)
                last = event.sequence
            self._published[job_id] = last
