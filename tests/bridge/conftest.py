"""Bridge fixtures: the real bridge in front of the real in-process gRPC server.

`client` talks to the app through httpx's ASGI transport inside a lifespan manager;
`live_url` serves it with uvicorn on a free port for what needs real sockets
(disconnects, heartbeats, many clients, the browser).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.run import bridge_server
from server.app import OctaviaServer
from server.auth import TokenAuthority
from server.settings import Settings


@pytest.fixture
def headers(tokens: TokenAuthority) -> dict[str, str]:
    """Bearer headers for the user 'alice'."""
    return {"Authorization": f"Bearer {tokens.mint('alice')}"}


@pytest.fixture
async def app(settings: Settings, server: OctaviaServer) -> AsyncIterator[Starlette]:
    application = create_app(settings, server.address)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as http:
        yield http


@pytest.fixture
async def live_url(settings: Settings, server: OctaviaServer) -> AsyncIterator[str]:
    async with bridge_server(settings, server.address) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def live(live_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        yield http
