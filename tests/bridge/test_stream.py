"""The job stream beyond the old suite: resume, heartbeats, cleanup on disconnect.

These run over real sockets (uvicorn on port 0): only there does a client really go away.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest

from server.app import OctaviaServer
from tests.bridge.helpers import stream_all, submit
from tests.bridge.sse import iter_events
from tests.support.engine import ScriptedEngine
from tests.support.waiting import eventually


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"sse_heartbeat_seconds": 0.2, "sse_retry_milliseconds": 1500}


@pytest.fixture
def held(engine: ScriptedEngine) -> Iterator[threading.Event]:
    """Jobs wait before their first phase until the test lets them go (or it ends)."""
    engine.hold = threading.Event()
    yield engine.hold
    engine.hold.set()


async def _status(http: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> str:
    response = await http.get(f"/api/v1/jobs/{job_id}/status", headers=headers)
    status: str = response.json()["status"]
    return status


async def _held_before_its_first_phase(
    http: httpx.AsyncClient, job_id: str, headers: dict[str, str]
) -> None:
    """Wait until the job has started (then it waits for `held`): no event comes after."""

    async def started() -> bool:
        return await _status(http, job_id, headers) == "processing"

    await eventually(started)


async def test_last_event_id_resume_misses_nothing_and_repeats_nothing(
    live: httpx.AsyncClient, headers: dict[str, str], wav: bytes, engine: ScriptedEngine,
    held: threading.Event,
) -> None:
    engine.ticks = 5
    job = await submit(live, headers, wav)
    url = f"/api/v1/jobs/{job['job_id']}/stream"
    first: list[int] = []
    async with live.stream("GET", url, headers=headers) as response:
        async for event in iter_events(response):
            if event.data:
                first.append(int(event.id or 0))
                held.set()
                if len(first) == 4:
                    break  # drop the connection mid-job
    await eventually(lambda: _done(live, job["job_id"], headers))

    resumed = await stream_all(live, job["job_id"], {**headers, "Last-Event-ID": str(first[-1])})
    again = await stream_all(live, job["job_id"], headers, last_event_id=str(first[-1]))
    ids = [int(event.id or 0) for event in resumed]
    assert ids == list(range(first[-1] + 1, ids[-1] + 1))  # every stored event, once
    assert [e.json for e in again] == [e.json for e in resumed]
    assert resumed[-1].json["status"] == "completed"


async def _done(http: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> bool:
    return await _status(http, job_id, headers) == "completed"


async def test_resume_after_the_terminal_event_answers_204(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    """204 makes EventSource stop reconnecting to a finished job."""
    job = await submit(client, headers, wav)
    events = await stream_all(client, job["job_id"], headers)
    last = events[-1].id or ""
    response = await client.get(f"/api/v1/jobs/{job['job_id']}/stream",
                                headers={**headers, "Last-Event-ID": last})
    assert response.status_code == 204
    bad = await client.get(f"/api/v1/jobs/{job['job_id']}/stream",
                           headers={**headers, "Last-Event-ID": "nope"})
    assert bad.status_code == 400


async def test_disconnect_cancels_the_upstream_watch(
    live: httpx.AsyncClient, headers: dict[str, str], wav: bytes, server: OctaviaServer,
    held: threading.Event,
) -> None:
    job = await submit(live, headers, wav)
    url = f"/api/v1/jobs/{job['job_id']}/stream"

    async def open_and_leave() -> None:
        async with live.stream("GET", url, headers=headers) as response:
            async for event in iter_events(response):
                if event.data:
                    return

    await asyncio.gather(*(open_and_leave() for _ in range(20)))
    await eventually(lambda: _watchers(server, 0), timeout=5)
    assert await _status(live, job["job_id"], headers) == "processing"  # the job goes on


async def _watchers(server: OctaviaServer, count: int) -> bool:
    return server.bus.watcher_count() == count


async def test_idle_stream_sends_heartbeats_and_the_retry_hint(
    live: httpx.AsyncClient, headers: dict[str, str], wav: bytes, held: threading.Event
) -> None:
    job = await submit(live, headers, wav)
    await _held_before_its_first_phase(live, job["job_id"], headers)
    heartbeats = 0
    async with live.stream("GET", f"/api/v1/jobs/{job['job_id']}/stream",
                           headers=headers) as response:
        events = iter_events(response, comments=True)
        assert (await anext(events)).retry == 1500
        assert (await anext(events)).json["phase"] == "pending"
        async for event in events:
            assert not event.data  # nothing happens to a held job, only heartbeats
            heartbeats += 1
            if heartbeats == 3:
                break
        await events.aclose()


async def test_bridge_shutdown_ends_open_streams(
    server: OctaviaServer, headers: dict[str, str], wav: bytes,
    held: threading.Event,
) -> None:
    from bridge.run import bridge_server

    async with httpx.AsyncClient(timeout=10) as http:
        async with bridge_server(server.settings, server.address) as port:
            http.base_url = httpx.URL(f"http://127.0.0.1:{port}")
            job = await submit(http, headers, wav)
            await _held_before_its_first_phase(http, job["job_id"], headers)
            stream = asyncio.create_task(stream_all(http, job["job_id"], headers))
            await eventually(lambda: _watchers(server, 1))
            stopping = asyncio.get_running_loop().time()
        events = await stream
    assert [e.json["phase"] for e in events] == ["pending"]  # then a clean end
    assert asyncio.get_running_loop().time() - stopping < 3
    await eventually(lambda: _watchers(server, 0))
