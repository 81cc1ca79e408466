"""Hundreds of browsers on one job: each gets the whole story, down to the terminal event,
through one upstream WatchJob (the bridge's feed of the job)."""

from __future__ import annotations

import asyncio
import threading

import httpx

from server.app import OctaviaServer
from tests.bridge.helpers import submit
from tests.bridge.sse import Event, iter_events
from tests.support.engine import ScriptedEngine
from tests.support.waiting import eventually

CLIENTS = 500


async def test_500_concurrent_streams_on_one_job_all_see_the_end(
    live_url: str, headers: dict[str, str], wav: bytes, engine: ScriptedEngine,
    server: OctaviaServer,
) -> None:
    """All 500 streams are open (each has its first message) before the job starts; the
    server meanwhile sees a single watcher: the bridge shares one WatchJob per job."""
    engine.hold = threading.Event()
    limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=CLIENTS + 10)
    opened = 0

    async def follow(http: httpx.AsyncClient, job_id: str) -> list[Event]:
        nonlocal opened
        events: list[Event] = []
        async with http.stream("GET", f"/api/v1/jobs/{job_id}/stream",
                               headers=headers) as response:
            assert response.status_code == 200
            async for event in iter_events(response):
                if event.data:
                    events.append(event)
                    if len(events) == 1:
                        opened += 1
        return events

    async with httpx.AsyncClient(base_url=live_url, timeout=60, limits=limits) as http:
        try:
            job = await submit(http, headers, wav)
            streams = [asyncio.create_task(follow(http, job["job_id"])) for _ in range(CLIENTS)]

            async def all_watching() -> bool:
                return opened == CLIENTS

            await eventually(all_watching, timeout=60)
            assert server.bus.watcher_count(job["job_id"]) == 1
        finally:
            engine.hold.set()
        results = await asyncio.gather(*streams)
    for events in results:
        assert events[-1].json["status"] == "completed"
        ids = [int(e.id) for e in events if e.id is not None]
        assert ids == sorted(set(ids)), "in order, nothing twice"
        phases = [e.json["phase"] for e in events]
        assert [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]] == [
            "pending", "transcribing", "translating", "synthesizing", "uploading", "completed"]
        # A stream may have opened just as the job started; none opened after it ended.
        assert events[0].json["status"] in ("pending", "processing")
    await eventually(lambda: _none_left(server))


async def _none_left(server: OctaviaServer) -> bool:
    return server.bus.watcher_count() == 0
