"""Bridge fixtures: the real bridge in front of the real in-process gRPC server.

`client` talks to the app through httpx's ASGI transport inside a lifespan manager;
`live_url` serves it with uvicorn on a free port for what needs real sockets
(disconnects, heartbeats, many clients, the browser).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.run import bridge_server
from server.app import OctaviaServer
from server.auth import TokenAuthority
from server.settings import Settings
from tests.support.fixtures import app as app
from tests.support.fixtures import client as client


@pytest.fixture
def headers(tokens: TokenAuthority) -> dict[str, str]:
    """Bearer headers for the user 'alice'."""
    return {"Authorization": f"Bearer {tokens.mint('alice')}"}


@pytest.fixture
async def live_url(settings: Settings, server: OctaviaServer) -> AsyncIterator[str]:
    async with bridge_server(settings, server.address) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def live(live_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        yield http
