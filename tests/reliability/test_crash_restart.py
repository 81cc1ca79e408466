"""`octavia serve` killed with SIGKILL in the middle of jobs, then started again: every job
it acknowledged is still there and ends, and a watcher that reconnects with its last
sequence hears the rest of the story without a gap."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
import pytest
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc

from server.settings import Settings
from tests.support.jobs import submit
from tests.support.processes import Processes, free_port

TERMINAL = (pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELLED)


async def follow(stub: jobs_pb2_grpc.JobServiceStub, job_id: str, auth, after: int,
                 heard: list[pb.WatchJobResponse]) -> None:
    """Append every message of a watch to `heard` until the stream ends or breaks."""
    call = stub.WatchJob(pb.WatchJobRequest(job_id=job_id, after_sequence=after),
                         metadata=auth)
    try:
        async for message in call:
            heard.append(message)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error


@pytest.mark.slow
async def test_a_killed_server_loses_no_acknowledged_job_and_watchers_resume_without_gaps(
    settings: Settings, tmp_path: Path, auth, wav
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    processes = Processes(tmp_path, {
        "OCTAVIA_JWT_SECRET": settings.jwt_secret.get_secret_value(),  # type: ignore[union-attr]
        "OCTAVIA_ENGINE": "tests.support.engine:scripted",
        "OCTAVIA_SCRIPTED_DELAY": "0.1",
        "OCTAVIA_SCRIPTED_TICKS": "4",
        "OCTAVIA_PROGRESS_INTERVAL_SECONDS": "0",
        "OCTAVIA_GRPC_PORT": str(port),
    })
    try:
        serve = processes.start("serve", "serve", "--no-bridge")
        async with grpc.aio.insecure_channel(address) as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=60)
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            jobs = [await submit(stub, wav, auth) for _ in range(4)]
            heard: dict[str, list[pb.WatchJobResponse]] = {j.job_id: [] for j in jobs}
            watchers = [asyncio.create_task(follow(stub, j.job_id, auth, j.sequence,
                                                   heard[j.job_id])) for j in jobs]
            await asyncio.sleep(1.0)  # the first job is running, the others wait
            serve.send_signal(signal.SIGKILL)
            await asyncio.wait_for(asyncio.to_thread(serve.wait), timeout=10)
            await asyncio.gather(*watchers)

        processes.start("serve", "serve", "--no-bridge")  # same data directory
        async with grpc.aio.insecure_channel(address) as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=60)
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            for job in jobs:
                story = heard[job.job_id]
                last = story[-1].sequence if story else job.sequence
                if not story or story[-1].job.status not in TERMINAL:
                    await asyncio.wait_for(follow(stub, job.job_id, auth, last, story),
                                           timeout=60)
                status = (await stub.GetStatus(pb.GetStatusRequest(job_id=job.job_id),
                                               metadata=auth)).job

                assert status.status in TERMINAL, f"job {job.job_id} is stuck"
                assert [m.sequence for m in story] == list(
                    range(job.sequence + 1, status.sequence + 1)), "no gap, no repeat"
                if status.status == pb.JOB_STATUS_FAILED:
                    assert status.error.reason == "INTERRUPTED", status.error_message
                    assert "restart" in status.error_message
            outcomes = [heard[j.job_id][-1].job.status for j in jobs]
            assert pb.JOB_STATUS_FAILED in outcomes, "the job that was running was interrupted"
            assert pb.JOB_STATUS_COMPLETED in outcomes, "the waiting ones ran after the restart"
    finally:
        processes.close()
