"""Fixtures that more than one test folder needs. Sibling folders cannot share a conftest,
so each conftest (or module) that wants one imports it by name (`import x as x`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from bridge.app import create_app
from server.app import OctaviaServer
from server.settings import Settings
from tests.support.postgres import fresh_database, needs_postgres


@pytest.fixture
async def app(settings: Settings, server: OctaviaServer) -> AsyncIterator[Starlette]:
    """The real bridge in front of the test's in-process gRPC server."""
    application = create_app(settings, server.address)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """httpx talking to `app` through the ASGI transport (no sockets)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as http:
        yield http


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)],
                name="database_url")
def database_url_on_both_stores(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Each test once on embedded SQLite (None) and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database() as url:
        yield url
