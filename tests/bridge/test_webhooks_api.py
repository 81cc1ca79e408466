"""The job's webhook deliveries through the bridge, with a real local receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from server.auth import TokenAuthority
from tests.bridge.helpers import stream_all, submit
from tests.support.waiting import eventually


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"webhook_secret": "whsec-" + "b" * 32, "webhook_backoff_seconds": 0.1,
            "webhook_timeout_seconds": 2.0,
            "webhook_allow_private_networks": True}  # the receiver listens on loopback


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_deliveries_and_their_attempts_are_listed(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, receiver: str,
    tokens: TokenAuthority,
) -> None:
    job = await submit(client, headers, wav, webhook_url=receiver)
    await stream_all(client, job["job_id"], headers)
    url = f"/api/v1/jobs/{job['job_id']}/webhooks"
    deliveries: list[dict[str, Any]] = []

    async def delivered() -> bool:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        deliveries[:] = response.json()["deliveries"]
        return bool(deliveries) and deliveries[-1]["state"] == "delivered"

    await eventually(delivered)
    last = deliveries[-1]
    assert (last["event_type"], last["url"]) == ("completed", receiver)
    assert last["delivery_id"] and last["sequence"] > 0
    assert last["next_attempt_at"] is None
    assert last["attempts"][-1]["status_code"] == 204
    assert last["attempts"][-1]["error"] is None
    assert last["attempts"][-1]["at"].endswith("Z")

    stranger = {"Authorization": f"Bearer {tokens.mint('mallory')}"}
    assert (await client.get(url, headers=stranger)).status_code == 404
