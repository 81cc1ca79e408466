"""CancelJob: pending and running jobs stop; finished jobs stay as they are."""

from __future__ import annotations

import threading

import pytest
from octavia.v1 import jobs_pb2 as pb

from server.app import OctaviaServer
from tests.support.engine import ScriptedEngine
from tests.support.jobs import submit, watch_all
from tests.support.waiting import eventually


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(hold=threading.Event())


async def test_cancelling_a_running_job_stops_it_and_ends_its_watchers(
    stub, auth, wav, engine, server: OctaviaServer
) -> None:
    job = await submit(stub, wav, auth)

    async def started() -> bool:
        return job.job_id in engine.started

    await eventually(started)
    response = await stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id), metadata=auth)

    assert response.job.status == pb.JOB_STATUS_CANCELLED
    assert response.job.phase == pb.JOB_PHASE_CANCELLED
    assert response.job.HasField("completed_at")
    messages = await watch_all(stub, job.job_id, auth, after=1)
    assert messages[-1].event_type == pb.EVENT_TYPE_CANCELLED

    async def engine_stopped() -> bool:
        return not server.dispatcher.executor.running

    await eventually(engine_stopped)
    status = await stub.GetStatus(pb.GetStatusRequest(job_id=job.job_id), metadata=auth)
    assert status.job.status == pb.JOB_STATUS_CANCELLED
    assert list(status.job.artifacts) == []


async def test_cancelling_a_queued_job_means_it_never_runs(stub, auth, wav, engine) -> None:
    first = await submit(stub, wav, auth)
    queued = await submit(stub, wav, auth)

    await stub.CancelJob(pb.CancelJobRequest(job_id=queued.job_id), metadata=auth)
    engine.hold.set()
    await watch_all(stub, first.job_id, auth)

    assert queued.job_id not in engine.started
    status = await stub.GetStatus(pb.GetStatusRequest(job_id=queued.job_id), metadata=auth)
    assert status.job.status == pb.JOB_STATUS_CANCELLED


async def test_cancelling_a_finished_job_leaves_it_completed(stub, auth, wav, engine) -> None:
    engine.hold.set()
    job = await submit(stub, wav, auth)
    done = (await watch_all(stub, job.job_id, auth))[-1].job

    response = await stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id), metadata=auth)

    assert response.job == done
