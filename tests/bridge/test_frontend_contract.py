"""The old frontend integration suite's nine checks, against the real bridge and server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import datetime

import httpx
import pytest

from server.app import OctaviaServer
from server.jobs import Phase
from tests.bridge.helpers import REQUIRED_FIELDS, stream_all, submit
from tests.bridge.sse import iter_events
from tests.support.engine import ScriptedEngine
from tests.support.waiting import eventually

RUNNING = ["transcribing", "translating", "synthesizing", "uploading"]


async def test_sse_connection_lifecycle(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    job = await submit(client, headers, wav)
    url = f"/api/v1/jobs/{job['job_id']}/stream"
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = [event async for event in iter_events(response)]
    assert events[0].retry is not None and not events[0].data  # the retry hint comes first
    data = [event for event in events if event.data]
    assert all(event.event is None and event.id for event in data)
    assert data[0].json["job_id"] == job["job_id"]
    assert data[-1].json["status"] == "completed"  # then the stream closed by itself


async def test_sse_progress_percentage_changes(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    job = await submit(client, headers, wav)
    progress = [e.json["progress_percentage"] for e in await stream_all(client, job["job_id"],
                                                                        headers)]
    assert progress == sorted(progress)
    assert len(set(progress)) > 4
    assert progress[-1] == 100


async def test_sse_phase_transitions(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, engine: ScriptedEngine,
    server: OctaviaServer,
) -> None:
    engine.hold = threading.Event()  # the stream opens while the job is still pending
    job = await submit(client, headers, wav)
    stream = asyncio.create_task(stream_all(client, job["job_id"], headers))
    await eventually(lambda: _watching(server, job["job_id"]))
    engine.hold.set()
    phases: list[str] = []
    for event in await stream:
        if not phases or phases[-1] != event.json["phase"]:
            phases.append(event.json["phase"])
    assert phases == ["pending", *RUNNING, "completed"]


async def _watching(server: OctaviaServer, job_id: str) -> bool:
    return server.bus.watcher_count(job_id) > 0


@pytest.fixture
def failing_engine(engine: ScriptedEngine) -> ScriptedEngine:
    engine.fail_in = Phase.TRANSLATING
    return engine


async def test_sse_error_scenarios(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes,
    failing_engine: ScriptedEngine,
) -> None:
    job = await submit(client, headers, wav)
    events = await stream_all(client, job["job_id"], headers)
    final = events[-1].json
    assert final["status"] == "failed"
    assert final["phase"] == "failed"
    assert "scripted failure" in final["error_message"]
    assert final["error"]["phase"] == "translating"
    assert final["completed_at"] is not None
    status = (await client.get(f"/api/v1/jobs/{job['job_id']}/status", headers=headers)).json()
    assert status == final


async def test_polling_endpoint_consistency_with_sse(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    job = await submit(client, headers, wav)
    events = await stream_all(client, job["job_id"], headers)
    polled = await client.get(f"/api/v1/jobs/{job['job_id']}/status", headers=headers)
    assert polled.status_code == 200
    assert polled.json() == events[-1].json  # the very same object, field for field
    assert int(events[-1].id or 0) == polled.json()["sequence"]


async def test_sse_job_not_found(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    unknown = uuid.uuid4()
    for path in ("stream", "status"):
        response = await client.get(f"/api/v1/jobs/{unknown}/{path}", headers=headers)
        assert response.status_code == 404
        assert response.json()["error"] == "JOB_NOT_FOUND"
        assert response.json()["message"]


@pytest.fixture
def rapid_engine(engine: ScriptedEngine) -> ScriptedEngine:
    engine.ticks = 150  # 600 progress events as fast as the runner can store them
    return engine


async def test_sse_multiple_progress_updates_rapid(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, rapid_engine: ScriptedEngine
) -> None:
    job = await submit(client, headers, wav)
    events = await stream_all(client, job["job_id"], headers)
    ids = [int(event.id or 0) for event in events]
    assert ids == sorted(set(ids))
    phases = [event.json["phase"] for event in events]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p][-5:] == [
        *RUNNING, "completed"]
    assert events[-1].json["status"] == "completed"
    assert events[-1].json["progress_percentage"] == 100


async def test_sse_response_format_completeness(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    job = await submit(client, headers, wav)
    bodies = [job] + [e.json for e in await stream_all(client, job["job_id"], headers)]
    bodies.append((await client.get(f"/api/v1/jobs/{job['job_id']}/status",
                                    headers=headers)).json())
    bodies.extend((await client.get("/api/v1/jobs", headers=headers)).json()["jobs"])
    for body in bodies:
        assert set(REQUIRED_FIELDS) <= body.keys()
        assert body["status"] == body["status"].lower()
        assert body["phase"] == body["phase"].lower()
        for field in ("created_at", "started_at", "completed_at"):
            if body[field] is not None:
                assert body[field].endswith("Z")
                assert datetime.fromisoformat(body[field]).utcoffset() is not None
    final = bodies[-1]
    assert final["output_file"] == "dubbed.wav"
    assert final["error_message"] is None
    assert final["started_at"] <= final["completed_at"]
    assert job["started_at"] is None and job["completed_at"] is None


ENDPOINTS = [
    ("POST", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/{id}/status"),
    ("GET", "/api/v1/jobs/{id}/stream"),
    ("POST", "/api/v1/jobs/{id}/stream-ticket"),
    ("POST", "/api/v1/jobs/{id}/cancel"),
    ("GET", "/api/v1/jobs/{id}/artifacts/dubbed.wav"),
    ("GET", "/api/v1/session"),
    ("POST", "/api/v1/session"),
]


@pytest.mark.parametrize("bad", [None, "Bearer not-a-jwt", "Basic YWxpY2U6cHc="])
async def test_sse_auth_required(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, bad: str | None
) -> None:
    job = await submit(client, headers, wav)
    sent = {} if bad is None else {"Authorization": bad}
    for method, path in ENDPOINTS:
        response = await client.request(method, path.format(id=job["job_id"]), headers=sent)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"] == "Bearer"
