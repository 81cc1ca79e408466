"""Client fixtures: a token for alice, and a cuttable proxy in front of the server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from octavia import AsyncOctaviaClient, RetryPolicy

from server.app import OctaviaServer
from server.auth import TokenAuthority
from tests.clients.proxy import CuttableProxy

FAST_RETRY = RetryPolicy(attempts=8, initial_backoff=0.05, max_backoff=0.5)


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
