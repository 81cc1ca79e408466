"""Security fixtures: the real bridge in front of the real gRPC server, issuer and audience
configured, so every token check the service has is switched on.

`app` and `client` are the bridge tests' own (tests/support/fixtures.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from grpc import aio

from server.app import OctaviaServer
from tests.security.tokens import AUDIENCE, ISSUER
from tests.support.fixtures import app as app
from tests.support.fixtures import client as client


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}


@pytest.fixture
async def grpc_channel(server: OctaviaServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(server.address) as chan:
        yield chan
