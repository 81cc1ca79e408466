"""A job that kills every worker that runs it: run again after each death, up to
`max_attempts` runs, then FAILED with the reason, and the queue lets it go."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc
from sqlmodel import Session, text

from server.app import OctaviaServer
from server.distributed.worker import Worker
from server.settings import Settings
from server.store import JobRecord
from tests.support.engine import ScriptedEngine
from tests.support.jobs import submit, watch_all
from tests.support.postgres import fresh_database, needs_postgres
from tests.support.processes import Processes

pytestmark = needs_postgres

MAX_ATTEMPTS = 3


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    return {"queue": "procrastinate", "run_worker": False,
            "artifacts_url": str(tmp_path / "shared-artifacts")}


@pytest.fixture
async def replica(settings: Settings) -> AsyncIterator[OctaviaServer]:
    server = OctaviaServer(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


@pytest.mark.slow
async def test_a_job_that_kills_every_worker_fails_after_max_attempts_with_the_reason(
    settings: Settings, replica: OctaviaServer, tmp_path: Path, auth, wav
) -> None:
    """One worker at a time, restarted by a supervisor (as systemd or Kubernetes would)
    whenever the job SIGKILLs it; the next worker notices the silent one and runs the job
    again, and after the last allowed run it fails the job instead."""
    processes = Processes(tmp_path, {
        "OCTAVIA_DATABASE_URL": settings.database_url_resolved,
        "OCTAVIA_QUEUE": "procrastinate",
        "OCTAVIA_JWT_SECRET": settings.jwt_secret.get_secret_value(),  # type: ignore[union-attr]
        "OCTAVIA_ARTIFACTS_URL": settings.artifacts_url_resolved,
        "OCTAVIA_ENGINE": "tests.support.dying:dying",
        "OCTAVIA_DIE_IN": "translating",
        "OCTAVIA_SCRIPTED_DELAY": "0.05",
        "OCTAVIA_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "OCTAVIA_WORKER_HEARTBEAT_SECONDS": "0.5",
        "OCTAVIA_STALLED_AFTER_SECONDS": "2",
        "OCTAVIA_PROGRESS_INTERVAL_SECONDS": "0",
    })
    deaths: list[int] = []
    try:
        worker = processes.start("worker0", "worker")
        async with grpc.aio.insecure_channel(replica.address) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            job = await submit(stub, wav, auth)
            watcher = asyncio.create_task(watch_all(stub, job.job_id, auth, job.sequence))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 120
            while not watcher.done():
                assert loop.time() < deadline, "the job never ended"
                if worker.poll() is not None:  # the supervisor's restart
                    deaths.append(worker.returncode)
                    worker = processes.start(f"worker{len(deaths)}", "worker")
                await asyncio.sleep(0.1)
            messages = watcher.result()
            status = (await stub.GetStatus(pb.GetStatusRequest(job_id=job.job_id),
                                           metadata=auth)).job
    finally:
        await asyncio.to_thread(processes.close)

    assert deaths == [-signal.SIGKILL] * MAX_ATTEMPTS, "one run per attempt, each one fatal"
    final = messages[-1]
    assert final.event_type == pb.EVENT_TYPE_FAILED
    assert final.job.status == pb.JOB_STATUS_FAILED == status.status
    assert final.job.error.reason == "INTERRUPTED" and final.job.error.retryable
    assert final.job.error_message == (
        f"its worker stopped {MAX_ATTEMPTS} times while translating; submit it again")
    assert final.job.current_step == "Failed while translating"

    sequences = [m.sequence for m in messages]
    assert sequences == list(range(job.sequence + 1, final.sequence + 1)), "no gap, no repeat"
    runs = [m.job.current_step for m in messages if m.job.current_step.startswith(
        ("Starting", "Resuming"))]
    assert runs == ["Starting"] + ["Resuming (translating)"] * (MAX_ATTEMPTS - 1)
    entered = [m.job.phase for m in messages if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED]
    assert entered == [pb.JOB_PHASE_TRANSCRIBING, pb.JOB_PHASE_TRANSLATING]

    with Session(replica.store.engine) as session:
        record = session.get(JobRecord, job.job_id)
        assert record is not None and record.task_id is not None
        task = session.exec(text("SELECT status, attempts FROM procrastinate_jobs WHERE id = :id")
                            .bindparams(id=record.task_id)).one()
    assert task[0] == "failed", "the queue will not run it again"
    shared = Path(settings.artifacts_url_resolved)
    assert not (shared / f"{job.job_id}.checkpoints").exists(), "its checkpoints are gone"


async def test_two_workers_checking_at_once_retry_a_stalled_job_once(
    settings: Settings, replica: OctaviaServer, auth, wav
) -> None:
    """Every worker looks for stalled jobs; two that saw the same one both retried it (the
    second failing, or counting a second attempt, or re-queuing it after a live worker had
    taken it up again). Fixed: one worker at a time checks, under an advisory lock."""
    async with grpc.aio.insecure_channel(replica.address) as channel:
        job = await submit(jobs_pb2_grpc.JobServiceStub(channel), wav, auth)
    with Session(replica.store.engine) as session:
        record = session.get(JobRecord, job.job_id)
        assert record is not None and record.task_id is not None
        task_id = record.task_id
        # Taken by a worker that is gone: "doing", and no worker row to say it is alive.
        session.exec(text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL "
                          "WHERE id = :id").bindparams(id=task_id))
        session.commit()

    workers = [Worker(settings, ScriptedEngine(), replica.store) for _ in range(2)]
    try:
        async with workers[0].app.open_async(), workers[1].app.open_async():
            await asyncio.gather(*(worker.check_stalled() for worker in workers))
    finally:
        for worker in workers:
            await worker.executor.close()

    with Session(replica.store.engine) as session:
        task = session.exec(text("SELECT status, attempts FROM procrastinate_jobs WHERE id = :id")
                            .bindparams(id=task_id)).one()
    assert tuple(task) == ("todo", 1), "queued again once, one attempt counted"
