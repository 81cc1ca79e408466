"""Hostile tokens, one table, against both doors: the gRPC interceptor and the bridge.

Each bad credential gets UNAUTHENTICATED (gRPC, with an ErrorInfo reason) and 401 (HTTP,
with a JSON body and `WWW-Authenticate: Bearer`) on every RPC and every endpoint; the
server runs with issuer and audience configured so those checks are live too.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import httpx
import pytest
from grpc import aio
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc
from starlette.applications import Starlette

from server.auth import TokenAuthority
from tests.security import checks, rpc
from tests.security.tokens import HS256_CASES


@pytest.mark.parametrize("make", HS256_CASES.values(), ids=HS256_CASES.keys())
async def test_a_bad_credential_is_refused_by_every_rpc_and_every_endpoint(
    grpc_channel: aio.Channel, client: httpx.AsyncClient, app: Starlette, wav: bytes,
    make: Callable[[], str | None],
) -> None:
    authorization = make()
    await checks.grpc_refuses(grpc_channel, authorization, wav)
    await checks.bridge_refuses(client, app, authorization, wav)


async def test_the_tables_reach_every_rpc_and_every_job_endpoint(app: Starlette) -> None:
    """Guards the generic enumeration: new RPCs and routes are in the tables by default."""
    names = {method.name for method in rpc.methods()}
    assert {"SubmitJob", "GetStatus", "WatchJob", "CancelJob", "ListJobs",
            "ReadArtifact"} <= names
    routes = {str(endpoint) for endpoint in rpc.endpoints(app)}
    assert {"POST /api/v1/jobs", "GET /api/v1/jobs", "GET /api/v1/jobs/{job_id}/status",
            "GET /api/v1/jobs/{job_id}/stream", "POST /api/v1/jobs/{job_id}/cancel",
            "POST /api/v1/jobs/{job_id}/stream-ticket",
            "GET /api/v1/jobs/{job_id}/artifacts/{name}", "POST /api/v1/session",
            "GET /api/v1/session"} <= routes


async def test_a_valid_token_with_issuer_and_audience_is_accepted_at_both_doors(
    grpc_channel: aio.Channel, client: httpx.AsyncClient, tokens: TokenAuthority
) -> None:
    """The control row: the same server accepts what it should."""
    token = tokens.mint("alice")
    stub = jobs_pb2_grpc.JobServiceStub(grpc_channel)
    await stub.ListJobs(pb.ListJobsRequest(), metadata=(("authorization", f"Bearer {token}"),))
    response = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    lower = await client.get("/api/v1/jobs", headers={"Authorization": f"bearer  {token} "})
    assert lower.status_code == 200, lower.text


async def test_two_authorization_headers_are_refused_at_both_doors(
    grpc_channel: aio.Channel, client: httpx.AsyncClient, tokens: TokenAuthority
) -> None:
    """A proxy in front may check one of them while we would act on another."""
    alice, mallory = tokens.mint("alice"), tokens.mint("mallory")
    stub = jobs_pb2_grpc.JobServiceStub(grpc_channel)
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.ListJobs(pb.ListJobsRequest(), metadata=(
            ("authorization", f"Bearer {alice}"), ("authorization", f"Bearer {mallory}")))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    response = await client.get("/api/v1/jobs", headers=[
        ("Authorization", f"Bearer {alice}"), ("Authorization", f"Bearer {mallory}")])
    checks.assert_unauthorized(response, "two headers", alice)
