"""Another user's job is indistinguishable from one that does not exist: same status, same
message (but for the id), same ErrorInfo, same HTTP headers; on every RPC and every bridge
endpoint, artifacts included, whatever state the job is in. And nothing of it changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from grpc import aio
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc
from starlette.applications import Starlette

from server.auth import TokenAuthority
from tests.security import rpc
from tests.support.engine import ScriptedEngine
from tests.support.jobs import submit, watch_all
from tests.support.waiting import eventually

MISSING = "00000000-0000-4000-8000-000000000000"
STATES = ["completed", "processing", "cancelled"]


@pytest.fixture(params=STATES)
def state(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def engine(state: str) -> Iterator[ScriptedEngine]:
    hold = None if state == "completed" else threading.Event()
    yield ScriptedEngine(hold=hold)
    if hold is not None:
        hold.set()


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _alices_job(
    stub: jobs_pb2_grpc.JobServiceStub, alice: tuple[tuple[str, str], ...], wav: bytes,
    state: str,
) -> pb.Job:
    job = await submit(stub, wav, alice, request_id="alices-request")
    if state == "completed":
        await watch_all(stub, job.job_id, alice)
    else:
        async def started() -> bool:
            reply = await stub.GetStatus(pb.GetStatusRequest(job_id=job.job_id), metadata=alice)
            return reply.job.status == pb.JOB_STATUS_PROCESSING
        await eventually(started)
        if state == "cancelled":
            await stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id), metadata=alice)
    reply = await stub.GetStatus(pb.GetStatusRequest(job_id=job.job_id), metadata=alice)
    return reply.job


async def test_over_grpc(
    grpc_channel: aio.Channel, tokens: TokenAuthority, wav: bytes, state: str
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(grpc_channel)
    alice, mallory = _bearer(tokens.mint("alice")), _bearer(tokens.mint("mallory"))
    before = await _alices_job(stub, alice, wav, state)
    job_id = before.job_id

    checked = []
    for method in rpc.methods():
        if "job_id" not in {field.name for field in method.input_type.fields}:
            continue
        fields = {"name": "dubbed.wav", "after_sequence": 0}
        theirs = await rpc.refused(grpc_channel, method,
                                   rpc.request_for(method, job_id=job_id, **fields), mallory)
        missing = await rpc.refused(grpc_channel, method,
                                    rpc.request_for(method, job_id=MISSING, **fields), mallory)
        assert theirs.code == missing.code, method.name
        assert theirs.details.replace(job_id, "ID") == missing.details.replace(MISSING, "ID")
        assert (theirs.error.reason, theirs.error.retryable) == (
            missing.error.reason, missing.error.retryable), method.name
        checked.append(method.name)
    assert {"GetStatus", "WatchJob", "CancelJob", "ReadArtifact"} <= set(checked)

    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=mallory)
    assert list(listed.jobs) == []
    # Alice's request_id names nothing of hers for mallory: it makes mallory's own job.
    mine = await submit(stub, wav, mallory, request_id="alices-request")
    assert mine.job_id != job_id
    after = await stub.GetStatus(pb.GetStatusRequest(job_id=job_id), metadata=alice)
    assert (after.job.status, after.job.sequence) == (before.status, before.sequence), (
        "a stranger's calls changed nothing")


_VOLATILE = {"date", "content-length"}


async def test_over_the_bridge(
    client: httpx.AsyncClient, app: Starlette, grpc_channel: aio.Channel,
    tokens: TokenAuthority, wav: bytes, state: str,
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(grpc_channel)
    alice = _bearer(tokens.mint("alice"))
    before = await _alices_job(stub, alice, wav, state)
    job_id = before.job_id
    mallory = {"Authorization": f"Bearer {tokens.mint('mallory')}"}
    variants: list[dict[str, str]] = [{}, {"Range": "bytes=0-9"}, {"Last-Event-ID": "1"}]

    checked = []
    for endpoint in rpc.endpoints(app, with_job=True):
        for extra in variants:
            headers = {**mallory, **extra}
            theirs = await client.request(endpoint.method, endpoint.url(job_id),
                                          headers=headers)
            missing = await client.request(endpoint.method, endpoint.url(MISSING),
                                           headers=headers)
            where = f"{endpoint} {extra}"
            assert theirs.status_code == missing.status_code, where
            assert theirs.status_code >= 400, (where, theirs.text)
            assert theirs.text.replace(job_id, "ID") == missing.text.replace(MISSING, "ID"), where
            assert {k: v for k, v in theirs.headers.items() if k not in _VOLATILE} == {
                k: v for k, v in missing.headers.items() if k not in _VOLATILE}, where
            checked.append(str(endpoint))
    mine = (await client.post("/api/v1/jobs", headers=mallory, data={"target_language": "es"},
                              files={"file": ("a.wav", wav, "audio/wav")})).json()["job_id"]
    ticket = tokens.mint_stream_ticket("mallory", mine, 60)
    theirs = await client.get(f"/api/v1/jobs/{job_id}/stream", params={"ticket": ticket})
    missing = await client.get(f"/api/v1/jobs/{MISSING}/stream", params={"ticket": ticket})
    assert theirs.status_code == missing.status_code == 401
    assert theirs.json() == missing.json()
    assert {"GET /api/v1/jobs/{job_id}/status", "GET /api/v1/jobs/{job_id}/stream",
            "POST /api/v1/jobs/{job_id}/cancel", "POST /api/v1/jobs/{job_id}/stream-ticket",
            "GET /api/v1/jobs/{job_id}/artifacts/{name}"} <= set(checked)

    listed = (await client.get("/api/v1/jobs", headers=mallory)).json()["jobs"]
    assert [job["job_id"] for job in listed] == [mine]
    after = await stub.GetStatus(pb.GetStatusRequest(job_id=job_id), metadata=alice)
    assert (after.job.status, after.job.sequence) == (before.status, before.sequence)
