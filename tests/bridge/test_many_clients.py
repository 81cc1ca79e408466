"""Hundreds of browsers on one job: each gets the whole story, down to the terminal event."""

from __future__ import annotations

import asyncio
import threading

import httpx

from server.app import OctaviaServer
from tests.bridge.helpers import stream_all, submit
from tests.support.engine import ScriptedEngine
from tests.support.waiting import eventually

CLIENTS = 500


async def test_500_concurrent_streams_on_one_job_all_see_the_end(
    live_url: str, headers: dict[str, str], wav: bytes, engine: ScriptedEngine,
    server: OctaviaServer,
) -> None:
    engine.hold = threading.Event()
    limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=CLIENTS + 10)
    async with httpx.AsyncClient(base_url=live_url, timeout=60, limits=limits) as http:
        try:
            job = await submit(http, headers, wav)
            streams = [asyncio.create_task(stream_all(http, job["job_id"], headers))
                       for _ in range(CLIENTS)]

            async def all_watching() -> bool:
                return server.bus.watcher_count(job["job_id"]) == CLIENTS

            await eventually(all_watching, timeout=60)
        finally:
            engine.hold.set()
        results = await asyncio.gather(*streams)
    for events in results:
        assert events[-1].json["status"] == "completed"
        ids = [int(e.id) for e in events if e.id is not None]
        assert ids == sorted(set(ids)), "in order, nothing twice"
        # A stream may have opened just as the job started; none opened after it ended.
        assert events[0].json["status"] in ("pending", "processing")
    await eventually(lambda: _none_left(server))


async def _none_left(server: OctaviaServer) -> bool:
    return server.bus.watcher_count() == 0
