"""Scale-out on PostgreSQL with procrastinate: replicas and workers that share only the database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc
from sqlmodel import Session, select, text

from server.app import OctaviaServer
from server.settings import Settings
from server.store import JobRecord
from tests.support.engine import ScriptedEngine
from tests.support.jobs import submit, submit_request, watch_all, watch_until
from tests.support.postgres import fresh_database, needs_postgres
from tests.support.waiting import eventually

pytestmark = needs_postgres

ROOT = Path(__file__).resolve().parents[2]
OCTAVIA = Path(sys.executable).parent / "octavia"  # the console script: `octavia serve|worker`
RUNNING = [pb.JOB_PHASE_TRANSCRIBING, pb.JOB_PHASE_TRANSLATING, pb.JOB_PHASE_SYNTHESIZING,
           pb.JOB_PHASE_UPLOADING]


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"queue": "procrastinate", "worker_heartbeat_seconds": 0.5,
            "stalled_after_seconds": 3.0}


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(hold=threading.Event())


async def test_a_replica_with_its_own_worker_runs_jobs_from_the_queue(
    stub, auth, wav, engine
) -> None:
    job = await submit(stub, wav, auth)
    engine.hold.set()

    messages = await watch_all(stub, job.job_id, auth)

    assert [m.job.phase for m in messages if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED] == (
        RUNNING
    )
    assert messages[-1].job.status == pb.JOB_STATUS_COMPLETED
    sequences = [m.sequence for m in messages]
    assert sequences == sorted(set(sequences))


async def test_every_job_has_a_task_and_cancel_reaches_the_running_worker(
    stub, auth, wav, engine, server: OctaviaServer
) -> None:
    job = await submit(stub, wav, auth)
    with Session(server.store.engine) as session:
        record = session.get(JobRecord, job.job_id)
        assert record is not None and record.task_id is not None
        task = session.exec(text("SELECT status, args->>'job_id' FROM procrastinate_jobs "
                                 "WHERE id = :id").bindparams(id=record.task_id)).one()
        assert task[1] == job.job_id

    async def running() -> bool:
        return job.job_id in engine.started

    await eventually(running)
    await stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id), metadata=auth)

    async def stopped() -> bool:
        return server.worker is not None and not server.worker.executor.running

    await eventually(stopped, timeout=5)
    status = await stub.GetStatus(pb.GetStatusRequest(job_id=job.job_id), metadata=auth)
    assert status.job.status == pb.JOB_STATUS_CANCELLED


async def test_a_submit_rolled_back_leaves_neither_job_nor_task(
    settings: Settings, server: OctaviaServer, stub, auth, wav
) -> None:
    """The task is deferred inside the job's transaction: when the transaction fails after
    the deferral, both go."""
    dispatcher = server.dispatcher
    enqueue = dispatcher._enqueue  # type: ignore[attr-defined]

    def enqueue_then_fail(connection, record):  # type: ignore[no-untyped-def]
        enqueue(connection, record)
        raise RuntimeError("the database went away mid-submit")

    dispatcher._enqueue = enqueue_then_fail  # type: ignore[attr-defined]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitJob(submit_request(wav), metadata=auth)
    assert caught.value.code() == grpc.StatusCode.INTERNAL

    with Session(server.store.engine) as session:
        assert session.exec(select(JobRecord)).all() == []
        assert session.exec(text("SELECT count(*) FROM procrastinate_jobs")).one()[0] == 0


# --- Separate processes ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def cluster(settings: Settings, tmp_path: Path) -> AsyncIterator[dict[str, object]]:
    """Two API replicas and two workers, each its own process, sharing PostgreSQL and a
    shared artifacts folder."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OCTAVIA_DATABASE_URL": settings.database_url_resolved,
        "OCTAVIA_QUEUE": "procrastinate",
        "OCTAVIA_JWT_SECRET": settings.jwt_secret.get_secret_value(),  # type: ignore[union-attr]
        "OCTAVIA_ARTIFACTS_URL": str(tmp_path / "shared-artifacts"),
        "OCTAVIA_ENGINE": "tests.support.engine:scripted",
        "OCTAVIA_SCRIPTED_DELAY": "0.15",
        "OCTAVIA_SCRIPTED_TICKS": "4",
        "OCTAVIA_WORKER_HEARTBEAT_SECONDS": "0.5",
        "OCTAVIA_STALLED_AFTER_SECONDS": "3",
        "OCTAVIA_PROGRESS_INTERVAL_SECONDS": "0",
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = []

    def start(name: str, command: list[str], **extra: str) -> None:
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed in finally)
        logs.append(log)
        processes[name] = subprocess.Popen(
            [str(OCTAVIA), *command], cwd=ROOT,
            env={**env, "OCTAVIA_DATA_DIR": str(tmp_path / name), **extra},
            stdout=subprocess.DEVNULL, stderr=log)

    replicas = []
    for n in range(2):
        port = free_port()
        start(f"api{n}", ["serve", "--no-worker", "--no-bridge"], OCTAVIA_GRPC_PORT=str(port))
        replicas.append(f"127.0.0.1:{port}")
    for n in range(2):
        start(f"worker{n}", ["worker"])
    try:
        for address in replicas:
            async with grpc.aio.insecure_channel(address) as channel:
                await asyncio.wait_for(channel.channel_ready(), timeout=60)
        yield {"replicas": replicas, "processes": processes, "logs": tmp_path}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


@pytest.mark.slow
async def test_two_replicas_two_workers_a_killed_worker_and_no_job_lost(
    cluster: dict[str, object], auth, wav
) -> None:
    replicas: list[str] = cluster["replicas"]  # type: ignore[assignment]
    processes: dict[str, subprocess.Popen[bytes]] = cluster["processes"]  # type: ignore[assignment]
    channels = [grpc.aio.insecure_channel(a) for a in replicas]
    stubs = [jobs_pb2_grpc.JobServiceStub(c) for c in channels]
    try:
        jobs = [await submit(stubs[n % 2], wav, auth) for n in range(6)]
        watchers = {
            (job.job_id, n): asyncio.create_task(watch_all(stubs[n], job.job_id, auth))
            for job in jobs for n in range(2)
        }
        # Kill one worker in the middle of its job, without a chance to clean up.
        await asyncio.sleep(1.0)
        processes["worker0"].send_signal(signal.SIGKILL)

        results = {key: await asyncio.wait_for(task, timeout=120)
                   for key, task in watchers.items()}
    finally:
        for channel in channels:
            await channel.close()

    for (job_id, replica), messages in results.items():
        final = messages[-1].job
        assert final.status == pb.JOB_STATUS_COMPLETED, (job_id, replica, final.error_message)
        entered = [m.job.phase for m in messages if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED]
        assert entered == RUNNING[-len(entered):] and entered[-1] == pb.JOB_PHASE_UPLOADING, (
            replica, entered)
        sequences = [m.sequence for m in messages]
        assert sequences == sorted(set(sequences)), "in order, no repeats"
        progress = [m.job.progress_percentage for m in messages]
        assert progress == sorted(progress)


@pytest.mark.slow
async def test_cancel_on_one_replica_stops_the_job_on_a_worker_elsewhere(
    cluster: dict[str, object], auth, wav
) -> None:
    replicas: list[str] = cluster["replicas"]  # type: ignore[assignment]
    async with grpc.aio.insecure_channel(replicas[0]) as first, \
            grpc.aio.insecure_channel(replicas[1]) as second:
        submitter = jobs_pb2_grpc.JobServiceStub(first)
        canceller = jobs_pb2_grpc.JobServiceStub(second)
        job = await submit(submitter, wav, auth)
        call = submitter.WatchJob(pb.WatchJobRequest(job_id=job.job_id), metadata=auth)
        while (await call.read()).job.phase != pb.JOB_PHASE_TRANSLATING:
            pass

        await canceller.CancelJob(pb.CancelJobRequest(job_id=job.job_id), metadata=auth)

        rest = []
        while (message := await call.read()) is not grpc.aio.EOF:
            rest.append(message)
        assert rest[-1].event_type == pb.EVENT_TYPE_CANCELLED
        await asyncio.sleep(2.0)  # a worker that kept going would try to complete it
        final = await submitter.GetStatus(pb.GetStatusRequest(job_id=job.job_id), metadata=auth)
        assert final.job.status == pb.JOB_STATUS_CANCELLED
        assert final.job.phase == pb.JOB_PHASE_CANCELLED
        logs: Path = cluster["logs"]  # type: ignore[assignment]
        worker_logs = "".join(
            await asyncio.to_thread(lambda: [p.read_text() for p in logs.glob("worker*.log")]))
        assert "with status: Aborted" in " ".join(worker_logs.split()), (
            "procrastinate's abort reached the worker")


async def test_an_event_written_by_a_worker_reaches_a_watcher_on_a_replica_within_100_ms(
    settings: Settings, auth, wav
) -> None:
    """Worker and API replica share only PostgreSQL: the event goes commit → NOTIFY →
    the replica's relay reads the log → its watcher."""
    import statistics
    import time

    replica = OctaviaServer(settings.model_copy(update={"run_worker": False}))
    worker = OctaviaServer(settings.model_copy(update={"grpc_port": 0}),
                           ScriptedEngine(ticks=20, delay=0.05, stamp_steps=True))
    await replica.start()
    await worker.start()
    try:
        async with grpc.aio.insecure_channel(replica.address) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            job = await submit(stub, wav, auth)
            delays = []
            async for message in stub.WatchJob(
                    pb.WatchJobRequest(job_id=job.job_id, after_sequence=job.sequence),
                    metadata=auth):
                step = message.job.current_step
                if message.event_type == pb.EVENT_TYPE_PROGRESS and " t=" in step:
                    delays.append(time.time() - float(step.rsplit(" t=", 1)[1]))
    finally:
        await worker.stop(grace=0.5)
        await replica.stop(grace=0.5)

    assert len(delays) >= 40
    p95 = statistics.quantiles(delays, n=20)[-1]
    print(f"relay latency: median {statistics.median(delays) * 1000:.1f} ms, "
          f"p95 {p95 * 1000:.1f} ms over {len(delays)} events")
    assert p95 < 0.100


async def test_a_job_resumed_after_review_gets_a_new_task_and_runs_on_a_worker(
    stub, auth, wav, engine, server: OctaviaServer
) -> None:
    engine.hold.set()
    job = await submit(stub, wav, auth,
                       options=pb.JobOptions(pause_after=[pb.JOB_PHASE_TRANSCRIBING]))
    messages = await watch_until(stub, job.job_id, auth, pb.JOB_STATUS_AWAITING_REVIEW,
                                 after=job.sequence)
    first_task = (await server.store.get(job.job_id)).task_id

    await stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=auth)
    rest = await watch_all(stub, job.job_id, auth, after=messages[-1].sequence)

    assert rest[-1].job.status == pb.JOB_STATUS_COMPLETED
    second_task = (await server.store.get(job.job_id)).task_id
    assert first_task is not None and second_task is not None and second_task != first_task



async def test_a_worker_on_another_machine_fetches_the_upload_from_the_artifact_store(
    settings: Settings, auth, wav
) -> None:
    """The replica's uploads folder is not the worker's: the worker gets the media from the
    artifact store, where the replica put it before queueing the job."""
    import shutil

    replica = OctaviaServer(settings.model_copy(update={"run_worker": False}))
    await replica.start()
    worker: OctaviaServer | None = None
    try:
        async with grpc.aio.insecure_channel(replica.address) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            job = await submit(stub, wav, auth)
            await asyncio.to_thread(shutil.rmtree, settings.uploads_dir)  # "another machine"
            worker = OctaviaServer(settings.model_copy(update={"grpc_port": 0}), ScriptedEngine())
            await worker.start()
            final = (await watch_all(stub, job.job_id, auth, after=job.sequence))[-1].job
            assert final.status == pb.JOB_STATUS_COMPLETED, final.error_message
            dubbed = b"".join([c.data async for c in stub.ReadArtifact(
                pb.ReadArtifactRequest(job_id=job.job_id, name="dubbed.wav"), metadata=auth)])
            assert dubbed == wav, "the scripted engine stores the source as its dub"
    finally:
        if worker is not None:
            await worker.stop(grace=0.5)
        await replica.stop(grace=0.5)
