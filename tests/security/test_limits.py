"""Limits that are configuration, not accidents: upload size, media duration, jobs in
flight per user, open streams per user. Each refusal names the limit in its message and
carries a reason; over HTTP it is a 4xx (413, 400, 429) with the same JSON body."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import pytest
from grpc import aio
from octavia.errors import Reason, from_rpc_error
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc

from bridge.run import bridge_server
from server.app import OctaviaServer
from server.auth import TokenAuthority
from server.settings import Settings
from tests.bridge.sse import iter_events
from tests.support.engine import ScriptedEngine
from tests.support.jobs import submit, submit_request
from tests.support.media import tone_wav
from tests.support.waiting import eventually

MAX_UPLOAD = 256 * 1024
JOBS = 2
STREAMS = 2


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"max_upload_bytes": MAX_UPLOAD, "max_media_seconds": 2.0,
            "max_active_jobs_per_user": JOBS, "max_streams_per_user": STREAMS}


@pytest.fixture
def engine() -> Iterator[ScriptedEngine]:
    """Jobs stay processing until the test lets them go (or the server stops)."""
    hold = threading.Event()
    yield ScriptedEngine(hold=hold)
    hold.set()


def bearer(tokens: TokenAuthority, user: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {tokens.mint(user)}"),)


async def refusal(call: object) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as caught:
        if hasattr(call, "read"):
            await call.read()  # type: ignore[attr-defined]
        else:
            await call  # type: ignore[misc]
    assert caught.value.details()
    return caught.value


# --- upload size and media duration ---------------------------------------------------


async def test_an_upload_over_the_limit_is_refused_with_the_limit_named(
    stub: jobs_pb2_grpc.JobServiceStub, auth: tuple[tuple[str, str], ...],
    client: httpx.AsyncClient,
) -> None:
    over = await refusal(stub.SubmitJob(submit_request(b"\0" * (MAX_UPLOAD + 1)), metadata=auth))
    assert over.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert from_rpc_error(over).reason == Reason.PAYLOAD_TOO_LARGE
    assert not from_rpc_error(over).retryable
    assert str(MAX_UPLOAD) in over.details()
    # Beyond the gRPC message limit (upload limit + 1 MiB), gRPC itself refuses.
    huge = await refusal(stub.SubmitJob(submit_request(b"\0" * (MAX_UPLOAD + 2 * 1024 * 1024)),
                                        metadata=auth))
    assert huge.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    headers = {"Authorization": auth[0][1]}
    response = await client.post("/api/v1/jobs", headers=headers, data={"target_language": "es"},
                                 files={"file": ("big.wav", b"\0" * (MAX_UPLOAD + 1))})
    assert response.status_code == 413
    assert response.json()["error"] == Reason.PAYLOAD_TOO_LARGE
    assert str(MAX_UPLOAD) in response.json()["message"]


async def test_media_longer_than_the_limit_is_refused_with_the_limit_named(
    stub: jobs_pb2_grpc.JobServiceStub, auth: tuple[tuple[str, str], ...],
    client: httpx.AsyncClient,
) -> None:
    long_wav = tone_wav(3.0, rate=8000)
    error = await refusal(stub.SubmitJob(submit_request(long_wav), metadata=auth))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert from_rpc_error(error).reason == Reason.MEDIA_TOO_LONG
    assert not from_rpc_error(error).retryable
    assert "2 s limit" in error.details()

    headers = {"Authorization": auth[0][1]}
    response = await client.post("/api/v1/jobs", headers=headers, data={"target_language": "es"},
                                 files={"file": ("long.wav", long_wav, "audio/wav")})
    assert response.status_code == 413
    assert response.json()["error"] == Reason.MEDIA_TOO_LONG
    assert response.json()["retryable"] is False


# --- jobs in flight per user ----------------------------------------------------------


async def test_jobs_in_flight_per_user_are_limited_and_freed_by_ending_one(
    stub: jobs_pb2_grpc.JobServiceStub, tokens: TokenAuthority, wav: bytes,
    client: httpx.AsyncClient,
) -> None:
    alice, bob = bearer(tokens, "alice"), bearer(tokens, "bob")
    first = await submit(stub, wav, alice, request_id="first")
    await submit(stub, wav, alice)

    error = await refusal(stub.SubmitJob(submit_request(wav), metadata=alice))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = from_rpc_error(error)
    assert (info.reason, info.retryable) == (Reason.TOO_MANY_JOBS, True)
    assert f"at most {JOBS}" in error.details()
    response = await client.post("/api/v1/jobs", headers={"Authorization": alice[0][1]},
                                 data={"target_language": "es"},
                                 files={"file": ("clip.wav", wav, "audio/wav")})
    assert response.status_code == 429
    assert response.json()["error"] == Reason.TOO_MANY_JOBS
    assert response.json()["retryable"] is True

    again = await submit(stub, wav, alice, request_id="first")  # a retry is not a new job
    assert again.job_id == first.job_id
    await submit(stub, wav, bob)  # other users are not held back

    await stub.CancelJob(pb.CancelJobRequest(job_id=first.job_id), metadata=alice)
    await submit(stub, wav, alice)


# --- open streams per user ------------------------------------------------------------


async def test_watch_streams_per_user_are_limited_and_freed_by_closing_one(
    stub: jobs_pb2_grpc.JobServiceStub, tokens: TokenAuthority, wav: bytes,
) -> None:
    alice, bob = bearer(tokens, "alice"), bearer(tokens, "bob")
    job = await submit(stub, wav, alice)
    theirs = await submit(stub, wav, bob)
    request = pb.WatchJobRequest(job_id=job.job_id)
    calls = [stub.WatchJob(request, metadata=alice) for _ in range(STREAMS)]
    for call in calls:
        await call.read()

    error = await refusal(stub.WatchJob(request, metadata=alice))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert from_rpc_error(error).reason == Reason.TOO_MANY_STREAMS
    assert str(STREAMS) in error.details()
    bobs = stub.WatchJob(pb.WatchJobRequest(job_id=theirs.job_id), metadata=bob)
    await bobs.read()  # other users are not held back

    calls[0].cancel()

    async def reopened() -> bool:
        call = stub.WatchJob(request, metadata=alice)
        try:
            await call.read()
        except aio.AioRpcError:
            return False
        calls.append(call)
        return True

    await eventually(reopened, timeout=5)
    for call in [*calls, bobs]:
        call.cancel()


@pytest.fixture
async def live(settings: Settings, server: OctaviaServer) -> AsyncIterator[httpx.AsyncClient]:
    async with bridge_server(settings, server.address) as port, httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=30
    ) as http:
        yield http


async def test_sse_streams_per_user_are_limited_and_freed_by_closing_one(
    live: httpx.AsyncClient, tokens: TokenAuthority, wav: bytes
) -> None:
    alice = {"Authorization": f"Bearer {tokens.mint('alice')}"}
    bob = {"Authorization": f"Bearer {tokens.mint('bob')}"}
    created = await live.post("/api/v1/jobs", headers=alice, data={"target_language": "es"},
                              files={"file": ("clip.wav", wav, "audio/wav")})
    url = f"/api/v1/jobs/{created.json()['job_id']}/stream"
    opened: list[asyncio.Task[None]] = []
    ready = asyncio.Queue[int]()

    async def hold_open(headers: dict[str, str]) -> None:
        async with live.stream("GET", url, headers=headers) as response:
            await ready.put(response.status_code)
            async for _ in iter_events(response):
                pass

    for _ in range(STREAMS):
        opened.append(asyncio.create_task(hold_open(alice)))
        assert await ready.get() == 200
    try:
        over = await live.get(url, headers=alice)
        assert over.status_code == 429
        assert over.json()["error"] == Reason.TOO_MANY_STREAMS
        assert str(STREAMS) in over.json()["message"]

        opened[0].cancel()
        await asyncio.gather(opened[0], return_exceptions=True)

        async def reopened() -> bool:
            task = asyncio.create_task(hold_open(alice))
            status = await ready.get()
            if status != 200:
                await task
                return False
            opened.append(task)
            return True

        await eventually(reopened, timeout=5)
        # bob's own job is his to watch, alice's quota is not his.
        job = await live.post("/api/v1/jobs", headers=bob, data={"target_language": "es"},
                              files={"file": ("clip.wav", wav, "audio/wav")})
        bobs_url = f"/api/v1/jobs/{job.json()['job_id']}/stream"
        async with live.stream("GET", bobs_url, headers=bob) as response:
            assert response.status_code == 200
    finally:
        for task in opened:
            task.cancel()
        await asyncio.gather(*opened, return_exceptions=True)
