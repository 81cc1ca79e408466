"""WatchJob: replay after a sequence, then live; no gaps, no repeats."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest
from octavia.v1 import jobs_pb2 as pb

from tests.support.engine import ScriptedEngine
from tests.support.jobs import submit, watch_all


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(ticks=4, hold=threading.Event())


async def test_resuming_after_any_sequence_gives_exactly_the_rest_of_the_story(
    stub, auth, wav, engine
) -> None:
    job = await submit(stub, wav, auth)
    engine.hold.set()
    full = await watch_all(stub, job.job_id, auth, after=0)
    history = await watch_all(stub, job.job_id, auth, after=0)
    assert len(history) == 1  # finished: a snapshot only

    everything = await watch_all(stub, job.job_id, auth, after=0)
    stored = await watch_all(stub, job.job_id, auth, after=1)
    assert [m.sequence for m in stored] == list(range(2, full[-1].sequence + 1))
    for cut in (1, 3, len(stored) // 2):
        rest = await watch_all(stub, job.job_id, auth, after=cut)
        assert [m.sequence for m in rest] == list(range(cut + 1, full[-1].sequence + 1))
    assert everything[-1].job == full[-1].job


async def test_a_watcher_that_reconnects_mid_job_misses_nothing_and_sees_nothing_twice(
    stub, auth, wav, engine
) -> None:
    job = await submit(stub, wav, auth)
    call = stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id), metadata=auth)
    first = await call.read()
    engine.hold.set()
    received = [first]
    while len(received) < 4:  # read a few live events, then drop the stream
        received.append(await call.read())
    call.cancel()

    rest = await watch_all(stub, job.job_id, auth, after=received[-1].sequence)

    sequences = [m.sequence for m in received[1:] + rest]
    assert sequences == list(range(received[1].sequence, rest[-1].sequence + 1))
    assert rest[-1].job.status == pb.JOB_STATUS_COMPLETED


async def test_live_watchers_all_see_phase_changes_and_the_end(stub, auth, wav, engine) -> None:
    job = await submit(stub, wav, auth)
    calls = [stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id), metadata=auth)
             for _ in range(20)]
    snapshots = await asyncio.gather(*(call.read() for call in calls))
    assert all(s.job.phase == pb.JOB_PHASE_PENDING for s in snapshots)
    engine.hold.set()

    async def rest(call) -> list[pb.WatchJobResponse]:  # type: ignore[no-untyped-def]
        messages = []
        while (message := await call.read()) is not grpc.aio.EOF:
            messages.append(message)
        return messages

    results = await asyncio.gather(*(rest(call) for call in calls))

    for messages in results:
        kinds = [m.event_type for m in messages]
        assert kinds.count(pb.EVENT_TYPE_PHASE_CHANGED) == 4
        assert kinds[-1] == pb.EVENT_TYPE_COMPLETED


async def test_negative_after_sequence_is_invalid(stub, auth, wav, engine) -> None:
    job = await submit(stub, wav, auth)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch_all(stub, job.job_id, auth, after=-1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
