"""The database goes away for a while: running jobs wait and go on, requests meanwhile get
UNAVAILABLE (retryable) instead of INTERNAL, and nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from octavia.v1 import jobs_pb2 as pb

from tests.support.engine import ScriptedEngine
from tests.support.jobs import submit, watch_all
from tests.support.postgres import needs_postgres
from tests.support.proxy import CuttableProxy, proxied_database

pytestmark = needs_postgres

RUNNING = [pb.JOB_PHASE_TRANSCRIBING, pb.JOB_PHASE_TRANSLATING, pb.JOB_PHASE_SYNTHESIZING,
           pb.JOB_PHASE_UPLOADING]


@pytest.fixture
async def proxy() -> AsyncIterator[CuttableProxy]:
    async with proxied_database() as cuttable:
        yield cuttable


@pytest.fixture
def database_url(proxy: CuttableProxy) -> str:
    return proxy.url


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(ticks=10, delay=0.1)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"concurrency": 2, "store_outage_seconds": 30}


async def test_a_running_job_waits_out_a_database_outage_and_completes(
    stub, auth, wav, proxy: CuttableProxy, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = [await submit(stub, wav, auth) for _ in range(2)]
    watchers = [asyncio.create_task(watch_all(stub, j.job_id, auth, after=j.sequence))
                for j in jobs]
    await asyncio.sleep(0.8)  # both are running

    proxy.disconnect()
    try:
        await asyncio.sleep(0.5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetStatus(pb.GetStatusRequest(job_id=jobs[0].job_id), metadata=auth)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "unreachable" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await submit(stub, wav, auth)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        await asyncio.sleep(1.5)
    finally:
        proxy.restore()

    assert "job store unreachable" in caplog.text, "the jobs did meet the outage"
    for watcher in watchers:
        messages = await asyncio.wait_for(watcher, timeout=60)
        assert messages[-1].job.status == pb.JOB_STATUS_COMPLETED, messages[-1].job
        entered = [m.job.phase for m in messages if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED]
        assert entered == RUNNING, "every phase, in order, despite the outage"
        sequences = [m.sequence for m in messages]
        assert sequences == sorted(set(sequences))
