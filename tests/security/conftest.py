"""Security fixtures: the real bridge in front of the real gRPC server, issuer and audience
configured, so every token check the service has is switched on.

They mirror tests/conftest.py and tests/bridge/conftest.py (fixtures are not shared
across sibling folders).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from grpc import aio
from starlette.applications import Starlette

from bridge.app import create_app
from server.app import OctaviaServer
from server.settings import Settings
from tests.security.tokens import AUDIENCE, ISSUER


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}


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
async def grpc_channel(server: OctaviaServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(server.address) as chan:
        yield chan
