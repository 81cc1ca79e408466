"""The bridge's status cache: one GetStatus per job, user and max age, never older than a
change the bridge forwarded, never shared between users."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import grpc
import httpx
import pytest

from bridge._status_cache import StatusCache
from server.auth import TokenAuthority
from tests.bridge.helpers import submit
from tests.support.engine import ScriptedEngine


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Server:
    """Answers like GetStatus: the job at its current sequence, counting calls."""

    def __init__(self) -> None:
        self.sequence = 1
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None

    async def fetch(self) -> dict[str, Any]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return {"job_id": "j", "status": "transcribing", "sequence": self.sequence}


def sequence_of(body: bytes) -> int:
    return int(json.loads(body)["sequence"])


async def test_an_answer_is_reused_until_it_is_max_age_old() -> None:
    clock, server = Clock(), Server()
    cache = StatusCache(0.25, clock=clock)
    assert sequence_of(await cache.get(("j", "alice"), server.fetch)) == 1
    server.sequence = 2
    clock.now += 0.2
    assert sequence_of(await cache.get(("j", "alice"), server.fetch)) == 1
    clock.now += 0.1
    assert sequence_of(await cache.get(("j", "alice"), server.fetch)) == 2
    assert server.calls == 2
    assert (cache.hits, cache.fetches) == (1, 2)


async def test_requests_that_miss_together_share_one_call() -> None:
    server = Server()
    server.gate = asyncio.Event()
    cache = StatusCache(0.25)
    waiting = [asyncio.create_task(cache.get(("j", "alice"), server.fetch)) for _ in range(50)]
    await asyncio.sleep(0.01)
    server.gate.set()
    bodies = await asyncio.gather(*waiting)
    assert server.calls == 1
    assert {sequence_of(body) for body in bodies} == {1}


async def test_a_caller_that_leaves_does_not_cancel_the_others_answer() -> None:
    server = Server()
    server.gate = asyncio.Event()
    cache = StatusCache(0.25)
    first = asyncio.create_task(cache.get(("j", "alice"), server.fetch))
    second = asyncio.create_task(cache.get(("j", "alice"), server.fetch))
    await asyncio.sleep(0.01)
    first.cancel()
    server.gate.set()
    assert sequence_of(await second) == 1
    assert server.calls == 1


async def test_a_change_made_through_the_bridge_is_seen_at_once() -> None:
    clock, server = Clock(), Server()
    cache = StatusCache(10.0, clock=clock)
    await cache.get(("j", "alice"), server.fetch)
    server.sequence = 7  # e.g. a cancel the bridge forwarded
    cache.saw(("j", "alice"), 7)
    assert sequence_of(await cache.get(("j", "alice"), server.fetch)) == 7
    assert sequence_of(await cache.get(("j", "alice"), server.fetch)) == 7
    assert server.calls == 2


async def test_users_never_share_an_answer() -> None:
    server = Server()
    cache = StatusCache(10.0)
    await cache.get(("j", "alice"), server.fetch)
    server.error = grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(),
                                        grpc.aio.Metadata(), "job j not found")
    with pytest.raises(grpc.aio.AioRpcError):
        await cache.get(("j", "mallory"), server.fetch)
    assert server.calls == 2


async def test_errors_are_not_remembered() -> None:
    server = Server()
    server.error = RuntimeError("store unreachable")
    cache = StatusCache(10.0)
    with pytest.raises(RuntimeError):
        await cache.get(("j", "alice"), server.fetch)
    server.error = None
    assert sequence_of(await cache.get(("j", "alice"), server.fetch)) == 1
    assert server.calls == 2


async def test_an_answer_never_steps_back_in_time() -> None:
    clock, server = Clock(), Server()
    cache = StatusCache(0.25, clock=clock)
    server.sequence = 5
    await cache.get(("j", "alice"), server.fetch)
    server.sequence = 4  # a replica's read that lags behind the last one
    clock.now += 1
    assert sequence_of(await cache.get(("j", "alice"), server.fetch)) == 5


async def test_max_age_zero_asks_the_server_every_time() -> None:
    server = Server()
    cache = StatusCache(0.0)
    for _ in range(3):
        await cache.get(("j", "alice"), server.fetch)
    assert server.calls == 3
    assert len(cache) == 0


async def test_it_keeps_at_most_max_entries_keys() -> None:
    server = Server()
    cache = StatusCache(10.0, max_entries=3)
    for job in "abcde":
        await cache.get((job, "alice"), server.fetch)
    assert len(cache) == 3


# Through the bridge ----------------------------------------------------------------------


async def test_status_polls_of_one_job_cost_the_server_one_call_per_max_age(
    client: httpx.AsyncClient, headers: dict[str, str], engine: ScriptedEngine, wav: bytes,
    app: Any,
) -> None:
    engine.hold = threading.Event()
    job_id = (await submit(client, headers, wav))["job_id"]
    statuses: StatusCache = app.state.statuses
    before = statuses.fetches
    answers = await asyncio.gather(*(
        client.get(f"/api/v1/jobs/{job_id}/status", headers=headers) for _ in range(20)))
    assert {response.status_code for response in answers} == {200}
    assert {response.json()["job_id"] for response in answers} == {job_id}
    assert statuses.fetches - before == 1
    assert answers[0].headers["cache-control"] == "no-store"
    engine.hold.set()


async def test_a_cancel_through_the_bridge_shows_in_the_next_status(
    client: httpx.AsyncClient, headers: dict[str, str], engine: ScriptedEngine, wav: bytes,
) -> None:
    engine.hold = threading.Event()
    job_id = (await submit(client, headers, wav))["job_id"]
    status_url = f"/api/v1/jobs/{job_id}/status"
    assert (await client.get(status_url, headers=headers)).json()["status"] != "cancelled"
    cancelled = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers)
    assert cancelled.status_code == 200
    assert (await client.get(status_url, headers=headers)).json()["status"] == "cancelled"


async def test_another_users_poll_is_still_not_found(
    client: httpx.AsyncClient, headers: dict[str, str], tokens: TokenAuthority, wav: bytes,
) -> None:
    status_url = f"/api/v1/jobs/{(await submit(client, headers, wav))['job_id']}/status"
    assert (await client.get(status_url, headers=headers)).status_code == 200
    mallory = {"Authorization": f"Bearer {tokens.mint('mallory')}"}
    response = await client.get(status_url, headers=mallory)
    assert response.status_code == 404
    assert response.json()["error"] == "JOB_NOT_FOUND"
