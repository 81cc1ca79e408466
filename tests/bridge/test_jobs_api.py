"""Submitting, listing, cancelling, downloading; health; errors as JSON; quiet logs."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import pytest
from asgi_lifespan import LifespanManager

from bridge.app import create_app
from bridge.errors import HTTP_STATUS
from bridge.logs import MaskSecrets, install
from server.settings import Settings
from tests.bridge.helpers import stream_all, submit
from tests.support.engine import ScriptedEngine

LIMIT = 200_000


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"max_upload_bytes": LIMIT}


@pytest.fixture
def held(engine: ScriptedEngine) -> Iterator[threading.Event]:
    engine.hold = threading.Event()
    yield engine.hold
    engine.hold.set()


async def test_submit_checks_the_form_and_the_size_limit(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    job = await submit(client, headers, wav, source_language="en", request_id="r-1")
    assert job["status"] == "pending" and job["source_language"] == "en"
    assert job["source_filename"] == "clip.wav"
    same = await submit(client, headers, wav, request_id="r-1")
    assert same["job_id"] == job["job_id"]  # idempotent resubmission

    def post(**kwargs: object) -> httpx.Request:
        return client.build_request("POST", "/api/v1/jobs", headers=headers, **kwargs)  # type: ignore[arg-type]

    cases = [
        (post(data={"target_language": "es"}), 415, "INVALID_ARGUMENT"),
        (post(data={"target_language": "es"}, files={"other": ("a", b"x")}), 400,
         "INVALID_ARGUMENT"),
        (post(files={"file": ("clip.wav", wav)}), 400, "UNSUPPORTED_LANGUAGE"),
        (post(data={"target_language": "xx"}, files={"file": ("clip.wav", wav)}), 400,
         "UNSUPPORTED_LANGUAGE"),
        (post(data={"target_language": "es"}, files={"file": ("big.wav", b"0" * (LIMIT + 1))}),
         413, "PAYLOAD_TOO_LARGE"),
    ]
    for request, status, error in cases:
        response = await client.send(request)
        assert (response.status_code, response.json()["error"]) == (status, error), response.text


async def test_an_oversized_body_is_refused_while_it_streams_in(
    live: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Chunked, so no Content-Length warns the bridge: counting the bytes stops it."""

    async def body() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        for _ in range(10):
            yield b"0" * 65536

    try:
        response = await live.post(
            "/api/v1/jobs", content=body(),
            headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
        )
    except httpx.HTTPError:
        pass  # the bridge may hang up mid-upload, which is fine too
    else:
        assert response.status_code == 413
        assert response.json()["error"] == "PAYLOAD_TOO_LARGE"
    listed = await live.get("/api/v1/jobs", headers=headers)
    assert listed.json()["jobs"] == []


async def test_list_and_cancel(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, held: threading.Event
) -> None:
    jobs = [await submit(client, headers, wav) for _ in range(3)]
    page = (await client.get("/api/v1/jobs", params={"page_size": 2}, headers=headers)).json()
    assert [j["job_id"] for j in page["jobs"]] == [jobs[2]["job_id"], jobs[1]["job_id"]]
    rest = (await client.get("/api/v1/jobs", headers=headers,
                             params={"page_token": page["next_page_token"]})).json()
    assert [j["job_id"] for j in rest["jobs"]] == [jobs[0]["job_id"]]
    assert rest["next_page_token"] is None
    assert (await client.get("/api/v1/jobs", params={"page_size": "x"},
                             headers=headers)).status_code == 400

    spelled_otherwise = jobs[0]["job_id"].upper()
    status = await client.get(f"/api/v1/jobs/{spelled_otherwise}/status", headers=headers)
    assert status.status_code == 200 and status.json()["job_id"] == jobs[0]["job_id"]

    cancelled = await client.post(f"/api/v1/jobs/{jobs[2]['job_id']}/cancel", headers=headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    events = await stream_all(client, jobs[2]["job_id"], headers)
    assert events[-1].json["status"] == "cancelled"


async def test_an_unfinished_jobs_artifact_is_too_early(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, held: threading.Event
) -> None:
    job = await submit(client, headers, wav)
    response = await client.get(f"/api/v1/jobs/{job['job_id']}/artifacts/dubbed.wav",
                                headers=headers)
    assert response.status_code == 425
    assert response.json()["error"] == "JOB_NOT_FINISHED"
    assert response.json()["retryable"] is True


async def test_artifacts_download_whole_and_in_ranges(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    job = await submit(client, headers, wav)
    final = (await stream_all(client, job["job_id"], headers))[-1].json
    listed = {a["name"]: a for a in final["artifacts"]}
    url = final["output_url"]

    whole = await client.get(url, headers=headers)
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    assert int(whole.headers["content-length"]) == len(whole.content)
    assert hashlib.sha256(whole.content).hexdigest() == listed["dubbed.wav"]["sha256"]
    size = len(whole.content)

    for spec, first, last in [("bytes=0-99", 0, 99), ("bytes=100-", 100, size - 1),
                              ("bytes=-10", size - 10, size - 1),
                              (f"bytes=10-{size * 2}", 10, size - 1)]:
        part = await client.get(url, headers={**headers, "Range": spec})
        assert part.status_code == 206, spec
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == whole.content[first:last + 1]

    beyond = await client.get(url, headers={**headers, "Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"
    several = await client.get(url, headers={**headers, "Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == whole.content

    download = await client.get(listed["target.srt"]["url"], params={"download": "1"},
                                headers=headers)
    assert download.headers["content-disposition"].startswith("attachment;")
    missing = await client.get(f"/api/v1/jobs/{job['job_id']}/artifacts/nope.wav",
                               headers=headers)
    assert (missing.status_code, missing.json()["error"]) == (404, "ARTIFACT_NOT_FOUND")


async def test_healthz_reflects_grpc_health(client: httpx.AsyncClient, settings: Settings) -> None:
    assert (await client.get("/healthz")).json() == {"status": "serving"}
    orphan = create_app(settings, "127.0.0.1:1")  # nothing listens there
    async with LifespanManager(orphan):
        transport = httpx.ASGITransport(app=orphan)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as http:
            response = await http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_every_grpc_status_maps_to_one_http_status() -> None:
    assert set(HTTP_STATUS) == set(grpc.StatusCode)
    assert HTTP_STATUS[grpc.StatusCode.NOT_FOUND] == 404
    assert HTTP_STATUS[grpc.StatusCode.UNAUTHENTICATED] == 401
    assert HTTP_STATUS[grpc.StatusCode.FAILED_PRECONDITION] == 425


async def test_the_access_log_masks_tickets(
    live: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    install()
    access = logging.getLogger("uvicorn.access")
    keep = Keep()
    access.addHandler(keep)
    level = access.level
    access.setLevel(logging.INFO)  # the service's configure_logging does this for the root
    try:
        job = await submit(live, headers, wav)
        ticket = (await live.post(f"/api/v1/jobs/{job['job_id']}/stream-ticket",
                                  headers=headers)).json()["ticket"]
        await stream_all(live, job["job_id"], ticket=ticket)
    finally:
        access.removeHandler(keep)
        access.setLevel(level)
    stream_lines = [line for line in seen if "/stream?" in line]
    assert stream_lines and all("ticket=***" in line for line in stream_lines)
    assert not any(ticket in line for line in seen)
    assert sum(isinstance(f, MaskSecrets) for f in access.filters) == 1


async def test_the_page_and_its_modules_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for module in ("octavia.js", "react-hook.js", "app.js"):
        response = await client.get(f"/web/{module}")
        assert response.status_code == 200, module
        assert "javascript" in response.headers["content-type"]
