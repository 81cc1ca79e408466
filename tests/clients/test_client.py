"""The SDK against a real in-process server: both clients, typed errors, downloads."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

import grpc
import pytest
from octavia import (
    AsyncOctaviaClient,
    ChecksumMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OctaviaClient,
    Reason,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
    pb,
)

from server.app import OctaviaServer
from server.settings import Settings
from tests.clients.conftest import FAST_RETRY
from tests.support.engine import ScriptedEngine

UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"


async def test_submit_watch_download_round_trip(client, wav, tmp_path) -> None:
    job = await client.submit(wav, "es", filename="clip.wav")
    assert job.request_id  # generated, so a retried submit cannot create a second job

    updates = [update async for update in client.watch(job.job_id)]

    sequences = [u.sequence for u in updates]
    assert sequences == sorted(set(sequences))
    assert updates[-1].job.status == pb.JOB_STATUS_COMPLETED
    paths = await client.download_all(job.job_id, tmp_path / "out")
    assert sorted(p.name for p in paths) == ["dubbed.wav", "target.srt"]
    assert (tmp_path / "out" / "dubbed.wav").read_bytes() == wav
    assert not list((tmp_path / "out").glob("*.part"))


async def test_resubmitting_a_request_id_returns_the_first_job(client, wav) -> None:
    first = await client.submit(wav, "es", request_id="same-key")
    again = await client.submit(wav, "es", request_id="same-key")
    assert again.job_id == first.job_id


async def test_typed_errors_carry_code_reason_and_message(server, client, wav) -> None:
    with pytest.raises(NotFound) as missing:
        await client.status(UNKNOWN_JOB)
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    assert missing.value.reason == Reason.JOB_NOT_FOUND
    assert UNKNOWN_JOB in missing.value.message

    with pytest.raises(InvalidArgument) as invalid:
        await client.submit(wav, "")
    assert invalid.value.code == grpc.StatusCode.INVALID_ARGUMENT

    async with AsyncOctaviaClient(server.address, token="not-a-jwt") as stranger:
        with pytest.raises(Unauthenticated) as denied:
            await stranger.list()
    assert denied.value.reason == Reason.UNAUTHENTICATED


def test_the_blocking_client_raises_the_same_types(server_thread, token) -> None:
    with OctaviaClient(server_thread, token=token) as client:
        with pytest.raises(NotFound):
            client.status(UNKNOWN_JOB)
        with pytest.raises(InvalidArgument):
            client.cancel("not-a-uuid")
    with OctaviaClient(server_thread, token="nope") as stranger, pytest.raises(Unauthenticated):
        stranger.list()


async def test_unreachable_server_is_unavailable_after_the_retries(unused_port) -> None:
    policy = RetryPolicy(attempts=3, initial_backoff=0.01)
    async with AsyncOctaviaClient(f"127.0.0.1:{unused_port}", token="t", retry=policy) as c:
        with pytest.raises(Unavailable):
            await c.status(UNKNOWN_JOB)


async def test_idempotent_calls_retry_until_the_server_is_reachable_again(
    proxy, token, wav
) -> None:
    async with AsyncOctaviaClient(proxy.address, token=token, retry=FAST_RETRY) as client:
        job = await client.submit(wav, "es")
        proxy.cut()
        proxy.refusing = True
        asyncio.get_running_loop().call_later(0.3, setattr, proxy, "refusing", False)
        again = await client.status(job.job_id)
    assert again.job_id == job.job_id
    assert proxy.connections >= 2


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(ticks=4, delay=0.03)


async def stored_history(client: AsyncOctaviaClient, job_id: str, after: int) -> list[int]:
    """The sequence of every stored event after `after`, replayed from the event log."""
    return [u.sequence async for u in client.watch(job_id, after_sequence=after)]


async def test_watch_survives_a_dropped_connection_without_losing_or_repeating(
    proxy, client, token, wav
) -> None:
    seen: list[pb.WatchJobResponse] = []
    async with AsyncOctaviaClient(proxy.address, token=token, retry=FAST_RETRY) as remote:
        job = await remote.submit(wav, "es")
        async for update in remote.watch(job.job_id):
            seen.append(update)
            if len(seen) == 3:  # mid-job: drop the connection and keep it down a moment
                proxy.cut()
                proxy.refusing = True
                asyncio.get_running_loop().call_later(0.2, setattr, proxy, "refusing", False)

    assert proxy.connections >= 2
    assert seen[-1].job.status == pb.JOB_STATUS_COMPLETED
    sequences = [u.sequence for u in seen]
    assert sequences[1:] == await stored_history(client, job.job_id, after=sequences[0])


async def test_blocking_watch_survives_a_dropped_connection(proxy, client, token, wav) -> None:
    loop = asyncio.get_running_loop()
    job = await client.submit(wav, "es")

    def follow() -> list[int]:
        sequences = []
        with OctaviaClient(proxy.address, token=token, retry=FAST_RETRY) as remote:
            for update in remote.watch(job.job_id):
                sequences.append(update.sequence)
                if len(sequences) == 3:
                    loop.call_soon_threadsafe(proxy.cut)
        return sequences

    sequences = await asyncio.to_thread(follow)

    assert proxy.connections >= 2
    assert sequences[1:] == await stored_history(client, job.job_id, after=sequences[0])


async def test_download_verifies_the_listed_sha256(server, client, wav, tmp_path) -> None:
    job = await client.submit(wav, "es")
    async for _ in client.watch(job.job_id):
        pass
    good = await client.download(job.job_id, "dubbed.wav", tmp_path)
    assert hashlib.sha256(good.read_bytes()).hexdigest() == hashlib.sha256(wav).hexdigest()

    stored = Path(server.settings.artifacts_url_resolved) / job.job_id / "dubbed.wav"
    corrupt = bytearray(stored.read_bytes())
    corrupt[-1] ^= 0xFF
    stored.write_bytes(bytes(corrupt))
    with pytest.raises(ChecksumMismatch):
        await client.download(job.job_id, "dubbed.wav", tmp_path / "again.wav")
    assert not (tmp_path / "again.wav").exists()
    assert not (tmp_path / "again.wav.part").exists()


async def test_download_of_an_unfinished_job_is_a_failed_precondition(
    client, wav, engine
) -> None:
    engine.hold = threading.Event()
    job = await client.submit(wav, "es")
    with pytest.raises(FailedPrecondition) as error:
        await client.download(job.job_id, "dubbed.wav")
    assert error.value.reason == Reason.JOB_NOT_FINISHED
    cancelled = await client.cancel(job.job_id)
    assert cancelled.status == pb.JOB_STATUS_CANCELLED
    with pytest.raises(NotFound):
        await client.download(UNKNOWN_JOB, "dubbed.wav")


async def test_list_pages_newest_first(client, wav) -> None:
    ids = [(await client.submit(wav, "es")).job_id for _ in range(3)]
    assert [j.job_id for j in await client.list(limit=None)] == ids[::-1]
    assert [j.job_id for j in await client.list(limit=2)] == ids[:0:-1]


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_thread(settings: Settings, engine: ScriptedEngine):  # type: ignore[no-untyped-def]
    """A server on its own loop in a thread, for tests of the blocking client."""
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    address: list[str] = []

    async def run() -> None:
        async with OctaviaServer(settings, engine) as service:
            address.append(service.address)
            stop.append(asyncio.Event())
            ready.set()
            await stop[0].wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield address[0]
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(10)
    loop.close()
