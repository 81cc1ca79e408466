"""Fixtures: a real in-process gRPC server on a free loopback port, with a scripted engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from grpc import aio
from octavia.v1 import jobs_pb2_grpc

from server.app import OctaviaServer
from server.auth import TokenAuthority
from server.settings import Settings
from tests.support.engine import ScriptedEngine
from tests.support.media import tone_wav

SECRET = "test-secret-" + "x" * 64  # long enough for every HS algorithm


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    return root


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module to change the server's settings."""
    return {}


@pytest.fixture
def database_url() -> str | None:
    """The store's URL; None is the embedded SQLite default. Overridden for PostgreSQL."""
    return None


@pytest.fixture
def settings(
    tmp_path: Path,
    media_root: Path,
    database_url: str | None,
    settings_overrides: dict[str, object],
) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "http_port": 0,
        "jwt_secret": SECRET,
        "media_root": media_root,
        "progress_interval_seconds": 0,
        "engine": "tests.support.engine:ScriptedEngine",
        "_env_file": None,
    }
    values.update(settings_overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
async def server(settings: Settings, engine: ScriptedEngine) -> AsyncIterator[OctaviaServer]:
    service = OctaviaServer(settings, engine)
    await service.start()
    try:
        yield service
    finally:
        await service.stop(grace=0.5)


@pytest.fixture
def tokens(settings: Settings) -> TokenAuthority:
    return TokenAuthority(settings)


@pytest.fixture
def auth(tokens: TokenAuthority) -> tuple[tuple[str, str], ...]:
    """Call metadata for the user 'alice'."""
    return (("authorization", f"Bearer {tokens.mint('alice')}"),)


@pytest.fixture
def other_auth(tokens: TokenAuthority) -> tuple[tuple[str, str], ...]:
    """Call metadata for another user, 'mallory'."""
    return (("authorization", f"Bearer {tokens.mint('mallory')}"),)


@pytest.fixture
async def channel(server: OctaviaServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(server.address) as chan:
        yield chan


@pytest.fixture
def stub(channel: aio.Channel) -> jobs_pb2_grpc.JobServiceStub:
    return jobs_pb2_grpc.JobServiceStub(channel)


@pytest.fixture(scope="session")
def wav() -> bytes:
    return tone_wav(1.0)
