"""Client fixtures: a token for alice, a cuttable proxy in front of the server, and a
webhook receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from octavia import AsyncOctaviaClient, RetryPolicy

from server.app import OctaviaServer
from server.auth import TokenAuthority
from tests.clients.proxy import CuttableProxy

FAST_RETRY = RetryPolicy(attempts=8, initial_backoff=0.05, max_backoff=0.5)
WEBHOOK_SECRET = "test-webhook-secret"
"""For `settings_overrides` in modules that submit jobs with a webhook URL."""


@pytest.fixture
def token(tokens: TokenAuthority) -> str:
    return tokens.mint("alice")


@pytest.fixture
async def proxy(server: OctaviaServer) -> AsyncIterator[CuttableProxy]:
    proxy = CuttableProxy(server.address)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest.fixture
async def client(server: OctaviaServer, token: str) -> AsyncIterator[AsyncOctaviaClient]:
    async with AsyncOctaviaClient(server.address, token=token, retry=FAST_RETRY) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[str]:
    """A webhook receiver that answers 204 to every request; yields its URL."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        listener.close()
        await listener.wait_closed()
