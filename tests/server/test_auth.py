"""Every RPC needs a valid token; another user's job looks exactly like a missing one."""

from __future__ import annotations

import time
import uuid

import grpc
import jwt
import pytest
from octavia.errors import Reason, Unauthenticated, from_rpc_error
from octavia.v1 import jobs_pb2 as pb

from server.auth import TokenAuthority
from server.settings import Settings
from tests.conftest import SECRET
from tests.support.jobs import submit, submit_request, watch_all


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def forged(**claims: object) -> str:
    payload: dict[str, object] = {"sub": "alice", "exp": int(time.time()) + 60}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, "HS256")


BAD_CREDENTIALS = {
    "no metadata": (),
    "not bearer": (("authorization", "Basic YWxpY2U6cHc="),),
    "empty bearer": (("authorization", "Bearer "),),
    "garbage": bearer("not-a-jwt"),
    "wrong secret": bearer(jwt.encode({"sub": "alice", "exp": int(time.time()) + 60},
                                      "another-secret-of-enough-length!", "HS256")),
    "alg none": bearer(jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None,
                                  algorithm="none")),
    "expired": bearer(forged(exp=int(time.time()) - 10)),
    "no exp": bearer(forged(exp=None)),
    "no sub": bearer(forged(sub=None)),
    "not yet valid": bearer(forged(nbf=int(time.time()) + 600)),
    "other algorithm": bearer(jwt.encode({"sub": "alice", "exp": int(time.time()) + 60},
                                         SECRET, "HS512")),
}


def calls(stub, wav: bytes, job_id: str):  # type: ignore[no-untyped-def]
    yield "SubmitJob", lambda md: stub.SubmitJob(submit_request(wav), metadata=md)
    yield "GetStatus", lambda md: stub.GetStatus(pb.GetStatusRequest(job_id=job_id), metadata=md)
    yield "CancelJob", lambda md: stub.CancelJob(pb.CancelJobRequest(job_id=job_id), metadata=md)
    yield "ListJobs", lambda md: stub.ListJobs(pb.ListJobsRequest(), metadata=md)
    yield "WatchJob", lambda md: watch_all(stub, job_id, md)
    yield "ReadArtifact", lambda md: _read_all(stub.ReadArtifact(
        pb.ReadArtifactRequest(job_id=job_id, name="dubbed.wav"), metadata=md))


async def _read_all(call):  # type: ignore[no-untyped-def]
    return [m async for m in call]


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
async def test_every_rpc_rejects_bad_credentials_as_unauthenticated(
    stub, wav, credentials
) -> None:
    for name, call in calls(stub, wav, str(uuid.uuid4())):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(credentials)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
        assert from_rpc_error(caught.value).reason == Reason.UNAUTHENTICATED


async def test_another_users_job_is_indistinguishable_from_a_missing_one(
    stub, auth, tokens, wav
) -> None:
    job = await submit(stub, wav, auth)
    await watch_all(stub, job.job_id, auth)
    mallory = bearer(tokens.mint("mallory"))

    for name, call in calls(stub, wav, job.job_id):
        if name in ("SubmitJob", "ListJobs"):
            continue
        with pytest.raises(grpc.aio.AioRpcError) as theirs:
            await call(mallory)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call_for_missing(stub, name, mallory)
        assert theirs.value.code() == grpc.StatusCode.NOT_FOUND, name
        assert theirs.value.details().replace(job.job_id, "ID") == (
            missing.value.details().replace(MISSING, "ID")
        )
    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=mallory)
    assert list(listed.jobs) == []


MISSING = "00000000-0000-4000-8000-000000000000"


async def call_for_missing(stub, name: str, md):  # type: ignore[no-untyped-def]
    for candidate, call in calls(stub, b"", MISSING):
        if candidate == name:
            return await call(md)
    raise AssertionError(name)


async def test_health_and_reflection_need_no_token(server) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="octavia.v1.JobService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_without_a_configured_secret_one_is_generated_once_and_shared(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    minted = TokenAuthority(settings).mint("alice")

    assert TokenAuthority(Settings(data_dir=tmp_path)).verify(minted).subject == "alice"
    secret_file = tmp_path / "jwt-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(Exception, match="invalid token"):
        TokenAuthority(Settings(data_dir=tmp_path / "elsewhere")).verify(minted)


def test_issuer_and_audience_are_enforced_when_configured(tmp_path) -> None:
    strict = TokenAuthority(Settings(data_dir=tmp_path, jwt_secret=SECRET, jwt_issuer="octavia",
                                     jwt_audience="dubbing"))
    assert strict.verify(strict.mint("alice")).subject == "alice"
    for claims in ({"iss": "evil", "aud": "dubbing"}, {"iss": "octavia", "aud": "other"}, {}):
        with pytest.raises(Exception, match=r"issuer|audience|missing"):
            strict.verify(forged(**claims))


def test_a_token_seen_before_is_still_refused_once_it_expires(settings: Settings) -> None:
    """Verified tokens are kept to skip the signature check, never past their `exp`."""
    tokens = TokenAuthority(settings)
    expires = int(time.time()) + 1
    token = forged(exp=expires)
    assert tokens.verify(token).subject == "alice"
    assert tokens.verify(token).subject == "alice"
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)


def test_a_refused_token_is_refused_again(settings: Settings) -> None:
    """Only tokens that passed are kept: a bad one is checked, and refused, every time."""
    tokens = TokenAuthority(settings)
    wrong = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60},
                       "another-secret-of-enough-length!", "HS256")
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="invalid token"):
            tokens.verify(wrong)
