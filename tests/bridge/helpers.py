"""Submitting and following jobs through the bridge's HTTP API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.bridge.sse import Event, messages

REQUIRED_FIELDS = (
    "job_id", "status", "phase", "progress_percentage", "current_step",
    "started_at", "completed_at", "error_message", "output_file",
)


async def submit(
    http: httpx.AsyncClient, headers: dict[str, str], media: bytes, **fields: str
) -> dict[str, Any]:
    data = {"target_language": "es", **fields}
    response = await http.post(
        "/api/v1/jobs", headers=headers, data=data,
        files={"file": ("clip.wav", media, "audio/wav")},
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def stream_all(
    http: httpx.AsyncClient, job_id: str, headers: dict[str, str] | None = None,
    **params: str,
) -> list[Event]:
    """Every message of the job's stream, until the bridge closes it."""
    url = f"/api/v1/jobs/{job_id}/stream"
    async with http.stream("GET", url, headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        return await messages(response)
