"""Who may see what: bearer tokens, single-job stream tickets and the cookie session."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import httpx
import pytest
from grpc import aio
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc

from server.app import OctaviaServer
from server.auth import TokenAuthority
from tests.bridge.helpers import stream_all, submit


async def _ticket(http: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> str:
    response = await http.post(f"/api/v1/jobs/{job_id}/stream-ticket", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["stream_url"].endswith(f"?ticket={body['ticket']}")
    assert 0 < body["expires_in"] <= 120
    ticket: str = body["ticket"]
    return ticket


async def test_a_ticket_opens_its_job_stream_without_headers_and_may_be_reused(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    job = await submit(client, headers, wav)
    ticket = await _ticket(client, job["job_id"], headers)
    events = await stream_all(client, job["job_id"], ticket=ticket)
    assert events[-1].json["status"] == "completed"
    # A reconnect within the ticket's life works (here: nothing left, so 204).
    again = await client.get(f"/api/v1/jobs/{job['job_id']}/stream",
                             params={"ticket": ticket, "last_event_id": events[-1].id or ""})
    assert again.status_code == 204


async def test_a_ticket_is_refused_for_another_job_and_as_a_bearer_token(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, server: OctaviaServer
) -> None:
    first, second = await submit(client, headers, wav), await submit(client, headers, wav)
    ticket = await _ticket(client, first["job_id"], headers)
    other = await client.get(f"/api/v1/jobs/{second['job_id']}/stream",
                             params={"ticket": ticket})
    assert other.status_code == 401
    as_bearer = {"Authorization": f"Bearer {ticket}"}
    for path in ("status", "stream"):
        response = await client.get(f"/api/v1/jobs/{first['job_id']}/{path}", headers=as_bearer)
        assert response.status_code == 401
        assert response.json()["error"] == "UNAUTHENTICATED"
    async with aio.insecure_channel(server.address) as channel:  # nor straight to gRPC
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.GetStatus(pb.GetStatusRequest(job_id=first["job_id"]),
                                 metadata=(("authorization", f"Bearer {ticket}"),))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_bearer_token_or_an_expired_ticket_is_refused_as_a_ticket(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, tokens: TokenAuthority
) -> None:
    job = await submit(client, headers, wav)
    url = f"/api/v1/jobs/{job['job_id']}/stream"
    bearer = headers["Authorization"].removeprefix("Bearer ")
    assert (await client.get(url, params={"ticket": bearer})).status_code == 401
    expired = tokens.mint("alice", ttl_seconds=1, typ="stream-ticket", job_id=job["job_id"])
    fresh = tokens.mint_stream_ticket("alice", job["job_id"], 60)
    assert (await client.get(url, params={"ticket": fresh})).status_code == 200
    await asyncio.sleep(2.1)
    assert (await client.get(url, params={"ticket": expired})).status_code == 401


async def test_another_users_job_is_not_found_and_a_malformed_id_is_a_bad_request(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, tokens: TokenAuthority
) -> None:
    job = await submit(client, headers, wav)
    bob = {"Authorization": f"Bearer {tokens.mint('bob')}"}
    for method, path in [("GET", "status"), ("GET", "stream"), ("POST", "cancel"),
                         ("POST", "stream-ticket"), ("GET", "artifacts/dubbed.wav")]:
        theirs = await client.request(method, f"/api/v1/jobs/{job['job_id']}/{path}",
                                      headers=bob)
        assert theirs.status_code == 404, path
        assert theirs.json()["error"] == "JOB_NOT_FOUND"
        unknown = await client.request(method, f"/api/v1/jobs/{uuid.uuid4()}/{path}",
                                       headers=bob)
        assert unknown.json() == {**theirs.json(), "message": unknown.json()["message"]}
        malformed = await client.request(method, f"/api/v1/jobs/not-a-uuid/{path}",
                                         headers=bob)
        assert malformed.status_code == 400
        assert malformed.json()["error"] == "INVALID_ARGUMENT"
    listed = (await client.get("/api/v1/jobs", headers=bob)).json()
    assert listed == {"jobs": [], "next_page_token": None}


async def test_the_cookie_session_authenticates_every_endpoint(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    assert (await client.post("/api/v1/session")).status_code == 401
    opened = await client.post("/api/v1/session", headers=headers)
    assert opened.status_code == 200
    cookie = opened.headers["set-cookie"].lower()
    assert "octavia_session=" in cookie
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert opened.json()["subject"] == "alice"

    job = await submit(client, {}, wav)  # no header: the cookie alone
    events = await stream_all(client, job["job_id"])
    assert events[-1].json["status"] == "completed"
    assert (await client.get("/api/v1/session")).json() == {"subject": "alice"}
    download = await client.get(events[-1].json["output_url"])
    assert download.status_code == 200

    assert (await client.delete("/api/v1/session")).status_code == 204
    assert (await client.get(f"/api/v1/jobs/{job['job_id']}/status")).status_code == 401
