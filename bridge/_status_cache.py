"""Recent `GetStatus` answers, so a job's pollers cost the server one call per interval.

Frontends poll `GET /status` every second or so, often from several tabs, and a busy job
page is polled by many. Each answer is kept, encoded, for `bridge_status_max_age_seconds`
per `(job, user)`: the server only ever told this user about this job, and the token is
still checked on every request. Requests that miss while a call for the same key is under
way wait for that call instead of making their own.

A change this bridge forwarded (cancel, edits, resume) raises the key's `floor` to the
sequence the server answered with; an entry older than that is not served, so whoever made
the change sees it on their next poll. Changes made elsewhere show within the max age.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]
"""`(job_id, user)`."""


@dataclass(slots=True)
class _Entry:
    body: bytes = b""
    sequence: int = -1
    expires: float = 0.0
    floor: int = 0
    """The entry is good only at or past this sequence (a change made through the bridge)."""
    fetching: asyncio.Task[None] | None = None


def encode(job: dict[str, Any]) -> bytes:
    """The bytes `JSONResponse` would send for `job`."""
    return json.dumps(job, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode()


class StatusCache:
    """Encoded job JSON by `(job_id, user)`, each for at most `max_age` seconds.

    `max_age` 0 turns it off: every request asks the server. At most `max_entries` keys are
    kept; the least recently used go first.
    """

    def __init__(self, max_age: float, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.max_entries = max_entries
        self.hits = 0
        self.fetches = 0
        self._clock = clock
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()

    async def get(self, key: Key, fetch: Callable[[], Awaitable[dict[str, Any]]]) -> bytes:
        """The job's JSON: the kept answer while it is fresh, else `fetch()`'s (shared by
        every request that waits meanwhile; its errors go to each of them)."""
        if self.max_age <= 0:
            self.fetches += 1
            return encode(await fetch())
        entry = self._entries.get(key)
        if entry is not None and entry.sequence >= entry.floor and self._clock() < entry.expires:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.body
        if entry is None:
            entry = self._add(key)
        if entry.fetching is None:
            entry.fetching = asyncio.ensure_future(self._refresh(key, entry, fetch))
            entry.fetching.add_done_callback(_retrieve)
        # Shielded: a caller that goes away does not cancel the others' answer.
        await asyncio.shield(entry.fetching)
        return entry.body

    def saw(self, key: Key, sequence: int) -> None:
        """The bridge forwarded a change and the job is now at `sequence`."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.floor = max(entry.floor, sequence)

    def __len__(self) -> int:
        return len(self._entries)

    async def _refresh(self, key: Key, entry: _Entry,
                       fetch: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        try:
            self.fetches += 1
            job = await fetch()
            if int(job["sequence"]) >= entry.sequence:  # never step back in time
                entry.body = encode(job)
                entry.sequence = int(job["sequence"])
            entry.expires = self._clock() + self.max_age
        except BaseException:
            if self._entries.get(key) is entry and not entry.body:
                del self._entries[key]  # nothing to keep: a 404 is not remembered
            raise
        finally:
            entry.fetching = None

    def _add(self, key: Key) -> _Entry:
        entry = self._entries[key] = _Entry()
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry


def _retrieve(task: asyncio.Task[None]) -> None:
    """Every waiter may have gone (their requests were cancelled): the error is theirs."""
    if not task.cancelled():
        task.exception()
