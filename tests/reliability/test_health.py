"""`grpc.health.v1` tells the truth about the store: readiness (`octavia.v1.JobService`) is
NOT_SERVING while the database is unreachable or hangs, and SERVING again once it answers;
liveness (`""`) stays SERVING throughout, and the bridge's /healthz mirrors readiness."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bridge.run import bridge_server
from server.app import OctaviaServer
from server.health import LIVENESS, SERVICE_NAME
from server.settings import Settings
from tests.support.engine import ScriptedEngine
from tests.support.postgres import needs_postgres
from tests.support.proxy import CuttableProxy, proxied_database
from tests.support.waiting import eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def status(server: OctaviaServer, service: str) -> int:
    async with aio.insecure_channel(server.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def becomes(server: OctaviaServer, wanted: int) -> None:
    async def reached() -> bool:
        return await status(server, SERVICE_NAME) == wanted

    await eventually(reached, timeout=15)


@pytest.fixture
async def proxy() -> AsyncIterator[CuttableProxy]:
    async with proxied_database() as cuttable:
        yield cuttable


@needs_postgres
async def test_readiness_follows_a_database_that_goes_away_and_comes_back(
    proxy: CuttableProxy, settings: Settings
) -> None:
    cut_settings = settings.model_copy(update={"database_url": proxy.url})
    server = OctaviaServer(cut_settings, ScriptedEngine())
    await server.start()
    try:
        async with bridge_server(cut_settings, server.address) as port, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=10
        ) as http:
            assert await status(server, SERVICE_NAME) == SERVING
            assert (await http.get("/healthz")).status_code == 200

            proxy.disconnect()
            await becomes(server, NOT_SERVING)
            assert await status(server, LIVENESS) == SERVING, "alive, only not ready"
            unready = await http.get("/healthz")
            assert unready.status_code == 503
            assert unready.json()["status"] == "not_serving"

            proxy.restore()
            await becomes(server, SERVING)
            assert (await http.get("/healthz")).status_code == 200
    finally:
        await server.stop(grace=0.5)


@pytest.fixture
def hang() -> Iterator[threading.Event]:
    released = threading.Event()
    yield released
    released.set()


@needs_postgres
async def test_a_database_that_hangs_reads_as_not_serving_until_it_answers(
    server: OctaviaServer, hang: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe's query blocks (a held lock, packets black-holed) instead of failing.
    Readiness used to await it forever and stay SERVING; the monitor now gives the ping
    one check interval."""
    answer = server.store._ping

    def stuck() -> None:
        hang.wait(30)
        answer()

    assert await status(server, SERVICE_NAME) == SERVING
    monkeypatch.setattr(server.store, "_ping", stuck)
    await becomes(server, NOT_SERVING)
    assert await status(server, LIVENESS) == SERVING

    monkeypatch.setattr(server.store, "_ping", answer)
    hang.set()
    await becomes(server, SERVING)
