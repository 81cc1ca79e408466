"""Algorithm confusion against a server that verifies RS256 with a public key: a token
HMAC-signed with that (public!) key, unsigned tokens and other algorithms are refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from grpc import aio
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc
from starlette.applications import Starlette

from server.auth import TokenAuthority
from tests.conftest import SECRET
from tests.security import checks
from tests.security.tokens import (
    AUDIENCE,
    ISSUER,
    claims,
    ec_private_pem,
    hmac_signed,
    public_pem,
    rsa_private_pem,
    unsigned,
    write_keypair,
)

SERVER_KEY = rsa_private_pem()
SERVER_PUBLIC = public_pem(SERVER_KEY)
OTHER_KEY = rsa_private_pem()


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    private, public = write_keypair(tmp_path / "keys", SERVER_KEY)
    return {"jwt_algorithm": "RS256", "jwt_public_key_file": public,
            "jwt_private_key_file": private, "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}


def _confused(key: bytes) -> str:
    return "Bearer " + hmac_signed({"alg": "HS256", "typ": "JWT"}, claims(), key)


RS256_CASES: dict[str, Callable[[], str | None]] = {
    "HS256 signed with the server's public key": lambda: _confused(SERVER_PUBLIC),
    "HS256 signed with the public key, no newline": lambda: _confused(SERVER_PUBLIC.strip()),
    "HS512 signed with the public key": lambda: "Bearer " + hmac_signed(
        {"alg": "HS512", "typ": "JWT"}, claims(), SERVER_PUBLIC),
    "HS256 signed with the old shared secret": lambda: (
        f"Bearer {jwt.encode(claims(), SECRET, algorithm='HS256')}"),
    "alg none": lambda: f"Bearer {unsigned('none')}",
    "RS256 signed by another key": lambda: (
        f"Bearer {jwt.encode(claims(), OTHER_KEY, algorithm='RS256')}"),
    "RS512 signed by the server's key": lambda: (
        f"Bearer {jwt.encode(claims(), SERVER_KEY, algorithm='RS512')}"),
    "PS256 signed by the server's key": lambda: (
        f"Bearer {jwt.encode(claims(), SERVER_KEY, algorithm='PS256')}"),
    "ES256 token": lambda: f"Bearer {jwt.encode(claims(), ec_private_pem(), algorithm='ES256')}",
    "RS256 by the server's key, wrong audience": lambda: (
        f"Bearer {jwt.encode(claims(aud='other'), SERVER_KEY, algorithm='RS256')}"),
}


@pytest.mark.parametrize("make", RS256_CASES.values(), ids=RS256_CASES.keys())
async def test_an_rs256_server_refuses_confused_and_foreign_tokens(
    grpc_channel: aio.Channel, client: httpx.AsyncClient, app: Starlette, wav: bytes,
    make: Callable[[], str | None],
) -> None:
    authorization = make()
    await checks.grpc_refuses(grpc_channel, authorization, wav)
    await checks.bridge_refuses(client, app, authorization, wav)


async def test_an_rs256_server_accepts_its_own_tokens_at_both_doors(
    grpc_channel: aio.Channel, client: httpx.AsyncClient, tokens: TokenAuthority
) -> None:
    token = tokens.mint("alice")
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    stub = jobs_pb2_grpc.JobServiceStub(grpc_channel)
    await stub.ListJobs(pb.ListJobsRequest(), metadata=(("authorization", f"Bearer {token}"),))
    response = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
