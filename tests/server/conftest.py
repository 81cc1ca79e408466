"""Every service test runs on both stores: embedded SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import fresh_database, postgres_available

_POSTGRES = postgres_available()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    if not _POSTGRES:
        pytest.skip("no PostgreSQL at OCTAVIA_TEST_POSTGRES / 127.0.0.1:5432")
    with fresh_database() as url:
        yield url
