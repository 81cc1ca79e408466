"""The queue is bounded, failures carry reasons, and a restart leaves no job in limbo."""

from __future__ import annotations

import threading

import grpc
import pytest
from octavia.errors import Reason, from_rpc_error
from octavia.v1 import jobs_pb2 as pb

from server.app import OctaviaServer
from server.engine import EngineError
from server.jobs import Phase
from server.settings import Settings
from tests.support.engine import ScriptedEngine
from tests.support.jobs import submit, watch_all


class TestQueue:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"queue_size": 2, "concurrency": 1}

    @pytest.fixture
    def engine(self) -> ScriptedEngine:
        return ScriptedEngine(hold=threading.Event())

    async def test_a_full_queue_answers_resource_exhausted_and_recovers(
        self, stub, auth, wav, engine
    ) -> None:
        running = await submit(stub, wav, auth)
        from tests.support.waiting import eventually

        async def picked_up() -> bool:
            return running.job_id in engine.started

        await eventually(picked_up)
        waiting = [await submit(stub, wav, auth) for _ in range(2)]
        assert [j.queue_position for j in waiting] == [0, 1]

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await submit(stub, wav, auth)
        error = from_rpc_error(caught.value)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.reason == Reason.QUEUE_FULL and error.retryable

        engine.hold.set()
        for job in [running, *waiting]:
            assert (await watch_all(stub, job.job_id, auth))[-1].job.status == (
                pb.JOB_STATUS_COMPLETED
            )
        await submit(stub, wav, auth)

    async def test_waiting_jobs_hear_their_queue_position_move(
        self, stub, auth, wav, engine
    ) -> None:
        await submit(stub, wav, auth)
        second = await submit(stub, wav, auth)
        third = await submit(stub, wav, auth)
        assert third.queue_position >= 1

        engine.hold.set()
        messages = await watch_all(stub, third.job_id, auth, after=third.sequence)
        positions = [m.job.queue_position for m in messages
                     if m.job.status == pb.JOB_STATUS_PENDING]
        assert positions and positions == sorted(positions, reverse=True)
        assert positions[-1] == 0
        assert second.job_id


class TestFailures:
    @pytest.fixture
    def engine(self) -> ScriptedEngine:
        return ScriptedEngine(
            fail_in=Phase.TRANSLATING,
            error=EngineError("no translation model for en→es: set OCTAVIA_TRANSLATION_MODEL",
                              reason=Reason.MODEL_MISSING),
        )

    async def test_a_failed_job_says_why_for_people_and_for_programs(
        self, stub, auth, wav
    ) -> None:
        job = await submit(stub, wav, auth)
        final = (await watch_all(stub, job.job_id, auth))[-1]

        assert final.event_type == pb.EVENT_TYPE_FAILED
        assert final.job.status == pb.JOB_STATUS_FAILED
        assert final.job.phase == pb.JOB_PHASE_FAILED
        assert "no translation model" in final.job.error_message
        assert final.job.error.reason == Reason.MODEL_MISSING
        assert final.job.error.phase == pb.JOB_PHASE_TRANSLATING
        assert not final.job.error.retryable
        assert list(final.job.artifacts) == []

    async def test_an_unexpected_engine_crash_fails_only_that_job(
        self, stub, auth, wav, engine
    ) -> None:
        engine.error = ZeroDivisionError("boom")
        broken = await submit(stub, wav, auth)
        final = (await watch_all(stub, broken.job_id, auth))[-1].job
        assert final.status == pb.JOB_STATUS_FAILED
        assert "translating failed: ZeroDivisionError: boom" in final.error_message

        engine.fail_in = None
        healthy = await submit(stub, wav, auth)
        assert (await watch_all(stub, healthy.job_id, auth))[-1].job.status == (
            pb.JOB_STATUS_COMPLETED
        )


async def test_restart_fails_interrupted_jobs_and_resumes_pending_ones(
    settings: Settings, auth, wav
) -> None:
    """A crash (simulated: the store is left as a dying process leaves it) must not leave a
    job 'processing' forever."""
    from octavia.v1 import jobs_pb2_grpc

    hold = threading.Event()
    first = OctaviaServer(settings, ScriptedEngine(hold=hold))
    await first.start()
    async with grpc.aio.insecure_channel(first.address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        interrupted = await submit(stub, wav, auth)
        queued = await submit(stub, wav, auth)
        call = stub.WatchJob(pb.WatchJobRequest(job_id=interrupted.job_id), metadata=auth)
        await call.read()
        hold.set()
        while (await call.read()).job.phase != pb.JOB_PHASE_TRANSCRIBING:
            pass
        hold.clear()
        call.cancel()
    # Put the interrupted job back to TRANSCRIBING, as a SIGKILL would have left it.
    record = await first.store.get(interrupted.job_id)
    await first.stop(grace=0)
    from sqlmodel import Session

    with Session(first.store.engine) as session:
        row = session.get(type(record), interrupted.job_id)
        assert row is not None
        row.status, row.phase = "processing", "transcribing"
        session.add(row)
        session.commit()
    first.store.engine.dispose()

    second = OctaviaServer(settings, ScriptedEngine())
    await second.start()
    try:
        async with grpc.aio.insecure_channel(second.address) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            failed = (await stub.GetStatus(pb.GetStatusRequest(job_id=interrupted.job_id),
                                           metadata=auth)).job
            assert failed.status == pb.JOB_STATUS_FAILED
            assert "interrupted by a server restart while transcribing" in failed.error_message
            assert failed.error.reason == Reason.INTERRUPTED and failed.error.retryable
            resumed = (await watch_all(stub, queued.job_id, auth))[-1].job
            assert resumed.status == pb.JOB_STATUS_COMPLETED
    finally:
        await second.stop(grace=0)
