"""The bridge's /metrics: HTTP requests by route template and status, in Prometheus format."""

from __future__ import annotations

import re
import uuid

import httpx


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit(" ", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    route = "/api/v1/jobs/{job_id}/status"
    before = (await client.get("/metrics")).text
    for _ in range(3):
        missing = await client.get(f"/api/v1/jobs/{uuid.uuid4()}/status", headers=headers)
        assert missing.status_code == 404

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    counted = sample(response.text, "octavia_http_requests_total", route=route, status="404")
    assert counted - sample(before, "octavia_http_requests_total", route=route,
                            status="404") == 3
    assert str(uuid.UUID(int=0)) not in response.text, "ids never become labels"
