"""Assertions shared by the token tables: every RPC and every endpoint refuses alike."""

from __future__ import annotations

import re

import grpc
import httpx
from grpc import aio
from octavia.errors import Reason
from starlette.applications import Starlette

from bridge.auth import SESSION_COOKIE
from tests.security import rpc

_COOKIE_SAFE = re.compile(r"^[A-Za-z0-9._~+/=-]+$")


def _metadata(authorization: str | None) -> tuple[tuple[str, str], ...]:
    return () if authorization is None else (("authorization", authorization),)


def _secret_part(authorization: str | None) -> str | None:
    """The part of a credential that must never be echoed back (or logged)."""
    if not authorization:
        return None
    token = authorization.strip().rpartition(" ")[2]
    return token if len(token) >= 12 else None


async def grpc_refuses(channel: aio.Channel, authorization: str | None, media: bytes) -> None:
    """Every JobService RPC answers UNAUTHENTICATED, with a reason and a message."""
    metadata = _metadata(authorization)
    secret = _secret_part(authorization)
    for method in rpc.methods():
        request = rpc.request_for(method, job_id=rpc.some_job_id(), name="dubbed.wav",
                                  content=media, filename="clip.wav", target_language="es")
        refusal = await rpc.refused(channel, method, request, metadata)
        assert refusal.code == grpc.StatusCode.UNAUTHENTICATED, (method.name, refusal)
        assert refusal.error.reason == Reason.UNAUTHENTICATED, method.name
        assert refusal.details, method.name
        if secret:
            assert secret not in refusal.details, method.name


def assert_unauthorized(response: httpx.Response, where: str, secret: str | None) -> None:
    assert response.status_code == 401, (where, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), where
    body = response.json()
    assert set(body) == {"error", "message", "retryable"}, (where, body)
    assert body["error"] == Reason.UNAUTHENTICATED, (where, body)
    assert isinstance(body["message"], str) and body["message"], where
    assert body["retryable"] is False, where
    assert response.headers.get("www-authenticate") == "Bearer", where
    if secret:
        assert secret not in response.text, where
        assert all(secret not in value for value in response.headers.values()), where


async def _call(client: httpx.AsyncClient, endpoint: rpc.Endpoint, job_id: str,
                headers: dict[str, str], media: bytes, **params: str) -> httpx.Response:
    url = endpoint.url(job_id)
    if endpoint.method == "POST" and endpoint.template == "/api/v1/jobs":
        return await client.post(url, headers=headers, data={"target_language": "es"},
                                 files={"file": ("clip.wav", media, "audio/wav")})
    return await client.request(endpoint.method, url, headers=headers, params=params)


async def bridge_refuses(
    client: httpx.AsyncClient, app: Starlette, authorization: str | None, media: bytes
) -> None:
    """Every authenticated endpoint answers 401 with a JSON body, whether the credential
    comes as a header, as the session cookie, or as a stream ticket."""
    secret = _secret_part(authorization)
    job_id = rpc.some_job_id()
    headers = {} if authorization is None else {"Authorization": authorization}
    for endpoint in rpc.endpoints(app):
        response = await _call(client, endpoint, job_id, headers, media)
        assert_unauthorized(response, f"{endpoint} (header)", secret)
    # The token part alone, as a cookie and as a ticket (a bad scheme is a header matter).
    scheme, _, token = (authorization or "").partition(" ")
    token = token if scheme == "Bearer" else ""
    if token and _COOKIE_SAFE.match(token):
        cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
        for endpoint in rpc.endpoints(app):
            response = await _call(client, endpoint, job_id, cookie, media)
            assert_unauthorized(response, f"{endpoint} (cookie)", secret)
    if token:
        response = await client.get(f"/api/v1/jobs/{job_id}/stream", params={"ticket": token})
        assert_unauthorized(response, "stream (ticket)", secret)
