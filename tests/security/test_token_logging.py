"""No token, ticket or session cookie ever reaches a log line: the whole browser and gRPC
story (good and hostile credentials) runs through the real uvicorn bridge with the
production handlers at DEBUG, in both formats, and the output is searched."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from grpc import aio
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.run import bridge_server
from server import logs
from server.app import OctaviaServer
from server.auth import TokenAuthority
from server.settings import Settings
from tests.security import checks
from tests.security.tokens import HS256_CASES

JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")


class RawRecords(logging.Handler):
    """Every record's message, before any formatter or filter could mask it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@contextlib.asynccontextmanager
async def _asgi_client(
    settings: Settings, server: OctaviaServer
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The bridge app in-process: the hostile table without a socket per request."""
    app = create_app(settings, server.address)
    async with LifespanManager(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bridge"
    ) as client:
        yield app, client


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, io.StringIO, RawRecords]]:
    text, json_lines, raw = io.StringIO(), io.StringIO(), RawRecords()
    handlers = [logs.make_handler("text", text), logs.make_handler("json", json_lines), raw]
    root = logging.getLogger()
    level = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield text, json_lines, raw
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)


async def test_no_credential_appears_in_any_log_line(
    settings: Settings, server: OctaviaServer, tokens: TokenAuthority, wav: bytes,
    captured: tuple[io.StringIO, io.StringIO, RawRecords],
) -> None:
    text, json_lines, raw = captured
    token = tokens.mint("alice")
    secrets = {token}
    bearer = {"Authorization": f"Bearer {token}"}
    async with (bridge_server(settings, server.address) as port,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
                aio.insecure_channel(server.address) as channel,
                _asgi_client(settings, server) as (app, asgi)):
        created = await http.post("/api/v1/jobs", headers=bearer, data={"target_language": "es"},
                                  files={"file": ("clip.wav", wav, "audio/wav")})
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        ticket = (await http.post(f"/api/v1/jobs/{job_id}/stream-ticket",
                                  headers=bearer)).json()["ticket"]
        secrets.add(ticket)
        stream = await http.get(f"/api/v1/jobs/{job_id}/stream", params={"ticket": ticket})
        assert stream.status_code == 200
        await http.get(f"/api/v1/jobs/{job_id}/stream",
                       params={"ticket": ticket + "x", "token": token})
        session = await http.post("/api/v1/session", headers=bearer)
        assert session.status_code == 200
        cookie = {"Cookie": f"octavia_session={token}"}
        status = await http.get(f"/api/v1/jobs/{job_id}/status", headers=cookie)
        assert status.json()["status"] == "completed"
        artifact = await http.get(f"/api/v1/jobs/{job_id}/artifacts/dubbed.wav",
                                  headers=bearer, params={"access_token": token})
        assert artifact.status_code == 200
        for make in HS256_CASES.values():
            authorization = make()
            if authorization and len(authorization) > 20:
                secrets.add(authorization.rpartition(" ")[2])
            await checks.grpc_refuses(channel, authorization, wav)
            await checks.bridge_refuses(asgi, app, authorization, wav)
            headers = {} if authorization is None else {"Authorization": authorization.strip()}
            await http.get(f"/api/v1/jobs/{job_id}/status", headers=headers)

    outputs = {"text": text.getvalue(), "json": json_lines.getvalue(),
               "records": "\n".join(raw.lines)}
    assert "uvicorn.access" in outputs["records"], "the access log was captured"
    assert f"/api/v1/jobs/{job_id}/stream" in outputs["text"]
    for name, output in outputs.items():
        for secret in secrets:
            for part in {secret, *secret.split(".")}:
                if len(part) >= 16:
                    assert part not in output, (name, part)
        assert not JWT_SHAPED.search(output), (name, JWT_SHAPED.search(output))
