"""Reading server-sent events the way `EventSource` does, for tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    id: str | None = None
    data: str = ""
    event: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


async def iter_events(response: httpx.Response, comments: bool = False) -> AsyncIterator[Event]:
    """Each dispatched block of a live response (comment-only blocks when `comments`)."""
    current = Event()
    seen_field = False
    async for line in response.aiter_lines():
        if line == "":
            if seen_field or (comments and current.comments):
                yield current
            current, seen_field = Event(), False
            continue
        if line.startswith(":"):
            current.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        seen_field = True
        if name == "id":
            current.id = value
        elif name == "data":
            current.data = f"{current.data}\n{value}" if current.data else value
        elif name == "event":
            current.event = value
        elif name == "retry":
            current.retry = int(value)


async def messages(response: httpx.Response) -> list[Event]:
    """The data messages of a whole stream, until the server closes it."""
    return [event async for event in iter_events(response) if event.data]
