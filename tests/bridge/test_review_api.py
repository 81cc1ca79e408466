"""Review through the bridge: segments, edits, resume, versions, the source, webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from starlette.applications import Starlette

from server.auth import TokenAuthority
from tests.bridge.helpers import REQUIRED_FIELDS, stream_all, submit
from tests.bridge.sse import iter_events
from tests.support.engine import ScriptedEngine
from tests.support.waiting import eventually

LINES = (
    (0.0, 0.4, "Hello there.", "Hola."),
    (0.5, 0.9, "See you soon.", "Hasta pronto."),
)


@pytest.fixture(autouse=True)
def lines(engine: ScriptedEngine) -> None:
    engine.lines = LINES  # the scripted engine saves these as the stages' checkpoints


@pytest.fixture
def stranger(tokens: TokenAuthority) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.mint('mallory')}"}


@pytest.fixture
def held(engine: ScriptedEngine) -> Iterator[threading.Event]:
    engine.hold = threading.Event()
    yield engine.hold
    engine.hold.set()


async def paused_job(client: httpx.AsyncClient, headers: dict[str, str], wav: bytes,
                     ) -> dict[str, Any]:
    job = await submit(client, headers, wav, pause_after="translating")
    url = f"/api/v1/jobs/{job['job_id']}/status"
    latest: dict[str, Any] = {}

    async def paused() -> bool:
        latest.update((await client.get(url, headers=headers)).json())
        return latest["status"] == "awaiting_review"

    await eventually(paused)
    return latest


async def test_submit_with_pause_awaits_review_and_the_stream_stays_open(
    live: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    """Over real sockets: httpx's ASGI transport hands over a body only once it ends."""
    client = live
    job = await submit(client, headers, wav, pause_after="translating")
    assert job["pause_after"] == ["translating"] and job["version"] == 1
    assert all(field in job for field in REQUIRED_FIELDS)

    url = f"/api/v1/jobs/{job['job_id']}/stream"
    async with client.stream("GET", url, headers=headers) as response:
        events = aiter(iter_events(response))
        while (paused := (await anext(events))).data == "" or (
                paused.json["status"] != "awaiting_review"):
            pass
        assert paused.json["phase"] == "translating"
        assert paused.json["current_step"] == "Awaiting review of the translation"
        assert paused.json["pause_after"] == []
        # Not terminal: the stream is still open, and carries the job on when resumed.
        resumed = await client.post(f"/api/v1/jobs/{job['job_id']}/resume", headers=headers)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["status"] in ("pending", "processing")
        rest = [event.json async for event in events if event.data]
    assert rest[0]["status"] in ("pending", "processing")
    assert rest[0]["current_step"] == "Resumed after review; waiting in the queue"
    assert rest[-1]["status"] == "completed" and rest[-1]["version"] == 1


async def test_pause_after_is_checked(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    both = await submit(client, headers, wav, pause_after="translating, transcribing")
    assert both["pause_after"] == ["transcribing", "translating"]
    response = await client.post("/api/v1/jobs", headers=headers,
                                 data={"target_language": "es", "pause_after": "uploading"},
                                 files={"file": ("clip.wav", wav, "audio/wav")})
    assert response.status_code == 400
    assert "pause_after" in response.json()["message"]
    # webhook_url reaches the server, which signs webhooks only with a configured key.
    hooked = await client.post("/api/v1/jobs", headers=headers,
                               data={"target_language": "es",
                                     "webhook_url": "https://example.com/hook"},
                               files={"file": ("clip.wav", wav, "audio/wav")})
    assert (hooked.status_code, hooked.json()["error"]) == (400, "WEBHOOKS_DISABLED")


async def test_segments_are_listed_edited_and_re_dubbed_as_a_new_version(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    job = await paused_job(client, headers, wav)
    base = f"/api/v1/jobs/{job['job_id']}"

    listed = await client.get(f"{base}/segments", headers=headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["editable"] is True
    assert (body["source_language"], body["target_language"]) == ("en", "es")
    assert body["segments"] == [
        {"index": 0, "start_seconds": 0.0, "end_seconds": 0.4, "speaker": None,
         "source_text": "Hello there.", "target_text": "Hola."},
        {"index": 1, "start_seconds": 0.5, "end_seconds": 0.9, "speaker": None,
         "source_text": "See you soon.", "target_text": "Hasta pronto."},
    ]

    edited = await client.patch(f"{base}/segments", headers=headers, json={"edits": [
        {"index": 1, "target_text": "Hasta luego.", "start_seconds": 0.45,
         "end_seconds": 0.95}]})
    assert edited.status_code == 200, edited.text
    assert edited.json()["segments"][1] == {
        "index": 1, "start_seconds": 0.45, "end_seconds": 0.95, "speaker": None,
        "source_text": "See you soon.", "target_text": "Hasta luego."}

    await client.post(f"{base}/resume", headers=headers)
    first = (await stream_all(client, job["job_id"], headers,
                              last_event_id=str(job["sequence"])))[-1].json
    assert (first["status"], first["version"]) == ("completed", 1)

    # Completed: edit again and re-dub as version 2.
    again = await client.patch(f"{base}/segments", headers=headers,
                               json={"edits": [{"index": 0, "source_text": "Hi there."}]})
    assert again.status_code == 200, again.text
    redub = await client.post(f"{base}/resume", headers=headers)
    assert redub.status_code == 200
    assert redub.json()["status"] in ("pending", "processing")
    assert redub.json()["version"] == 2
    second = (await stream_all(client, job["job_id"], headers,
                               last_event_id=str(first["sequence"])))[-1].json
    assert (second["status"], second["version"]) == ("completed", 2)

    versions = (await client.get(f"{base}/versions", headers=headers)).json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    for version in versions:
        assert version["output_file"] == "dubbed.wav"
        assert version["completed_at"].endswith("Z")
        assert version["output_url"] == (
            f"{base}/artifacts/dubbed.wav?version={version['version']}")
        for artifact in version["artifacts"]:
            download = await client.get(artifact["url"], headers=headers)
            assert download.status_code == 200
            assert hashlib.sha256(download.content).hexdigest() == artifact["sha256"]
            assert download.headers["cache-control"] == "private, max-age=3600"
    ranged = await client.get(versions[0]["output_url"], headers={**headers, "Range": "bytes=0-9"})
    assert ranged.status_code == 206
    size = versions[0]["artifacts"][0]["size_bytes"]
    assert ranged.headers["content-range"] == f"bytes 0-9/{size}"
    current = await client.get(f"{base}/artifacts/dubbed.wav", headers=headers)
    assert current.headers["cache-control"] == "private, no-cache"  # a re-dub changes it
    missing = await client.get(f"{base}/artifacts/dubbed.wav?version=3", headers=headers)
    assert (missing.status_code, missing.json()["error"]) == (404, "ARTIFACT_NOT_FOUND")
    bad = await client.get(f"{base}/artifacts/dubbed.wav?version=x", headers=headers)
    assert bad.status_code == 400


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"{not json", 400, "not JSON"),
    (b"\xff\xfe", 400, "not JSON"),
    (b"[]", 422, '{"edits"'),
    (b'{"edits": {}}', 422, '{"edits"'),
    (b'{"edits": [], "extra": 1}', 422, "unknown field"),
    (b'{"edits": []}', 422, "empty"),
    (b'{"edits": [1]}', 422, "must be an object"),
    (b'{"edits": [{"target_text": "x"}]}', 422, "index"),
    (b'{"edits": [{"index": "0", "target_text": "x"}]}', 422, "index"),
    (b'{"edits": [{"index": true, "target_text": "x"}]}', 422, "index"),
    (b'{"edits": [{"index": -1, "target_text": "x"}]}', 422, "index"),
    (b'{"edits": [{"index": 0, "target_text": 5}]}', 422, "must be a string"),
    (b'{"edits": [{"index": 0, "start_seconds": "1"}]}', 422, "number of seconds"),
    (b'{"edits": [{"index": 0, "start_seconds": NaN}]}', 422, "number of seconds"),
    (b'{"edits": [{"index": 0, "start_seconds": 1e999}]}', 422, "number of seconds"),
    (b'{"edits": [{"index": 0, "speaker": "x"}]}', 422, "unknown field"),
    (b'{"edits": [{"index": 0}]}', 422, "changes nothing"),
    # Shaped right, refused by the server: one status for every INVALID_ARGUMENT.
    (b'{"edits": [{"index": 7, "target_text": "x"}]}', 400, "no segment 7"),
    (b'{"edits": [{"index": 0, "target_text": "  "}]}', 400, "must not be empty"),
    (b'{"edits": [{"index": 0, "end_seconds": 0.6}]}', 400, "before segment 0 ends"),
])
async def test_a_bad_edit_is_refused_with_a_message(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, body: bytes, status: int,
    words: str,
) -> None:
    job = await paused_job(client, headers, wav)
    response = await client.patch(f"/api/v1/jobs/{job['job_id']}/segments", content=body,
                                  headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"] == "INVALID_ARGUMENT"
    assert words in response.json()["message"]
    unchanged = (await client.get(f"/api/v1/jobs/{job['job_id']}/segments",
                                  headers=headers)).json()["segments"]
    assert [s["target_text"] for s in unchanged] == ["Hola.", "Hasta pronto."]


async def test_an_oversized_edit_body_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.patch(f"/api/v1/jobs/{uuid.uuid4()}/segments", headers=headers,
                                  content=b" " * (1024 * 1024 + 1))
    assert (response.status_code, response.json()["error"]) == (413, "PAYLOAD_TOO_LARGE")


async def test_another_users_job_and_an_unknown_job_are_not_found(
    client: httpx.AsyncClient, headers: dict[str, str], stranger: dict[str, str], wav: bytes
) -> None:
    job = await paused_job(client, headers, wav)
    edit = {"edits": [{"index": 0, "target_text": "Hola."}]}
    for job_id in (job["job_id"], str(uuid.uuid4())):
        base = f"/api/v1/jobs/{job_id}"
        calls = [client.get(f"{base}/segments", headers=stranger),
                 client.patch(f"{base}/segments", headers=stranger, json=edit),
                 client.post(f"{base}/resume", headers=stranger),
                 client.get(f"{base}/versions", headers=stranger),
                 client.get(f"{base}/source", headers=stranger),
                 client.get(f"{base}/source", headers={**stranger, "Range": "bytes=0-"})]
        for response in await asyncio.gather(*calls):
            assert response.status_code == 404, (response.request.url, response.text)
            assert response.json()["error"] == "JOB_NOT_FOUND"
    malformed = await client.get("/api/v1/jobs/nope/segments", headers=headers)
    assert malformed.status_code == 400
    anonymous = await client.get(f"/api/v1/jobs/{job['job_id']}/segments")
    assert anonymous.status_code == 401
    still = (await client.get(f"/api/v1/jobs/{job['job_id']}/status", headers=headers)).json()
    assert still["status"] == "awaiting_review"  # the stranger's resume did nothing


async def test_a_running_job_is_not_reviewable_yet(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, held: threading.Event
) -> None:
    job = await submit(client, headers, wav)
    base = f"/api/v1/jobs/{job['job_id']}"
    segments = await client.get(f"{base}/segments", headers=headers)
    assert (segments.status_code, segments.json()["error"]) == (425, "NO_SEGMENTS")
    assert segments.json()["retryable"] is True
    edit = await client.patch(f"{base}/segments", headers=headers,
                              json={"edits": [{"index": 0, "target_text": "x"}]})
    assert (edit.status_code, edit.json()["error"]) == (409, "JOB_NOT_REVIEWABLE")
    resume = await client.post(f"{base}/resume", headers=headers)
    assert (resume.status_code, resume.json()["error"]) == (409, "JOB_NOT_REVIEWABLE")
    versions = await client.get(f"{base}/versions", headers=headers)
    assert versions.json()["versions"] == []


async def test_the_source_media_downloads_whole_and_in_ranges(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes
) -> None:
    job = await paused_job(client, headers, wav)
    url = f"/api/v1/jobs/{job['job_id']}/source"
    whole = await client.get(url, headers=headers)
    assert whole.status_code == 200
    assert whole.content == wav
    assert whole.headers["content-type"] in ("audio/wav", "audio/x-wav")
    assert whole.headers["accept-ranges"] == "bytes"
    assert int(whole.headers["content-length"]) == len(wav)
    assert "clip.wav" in whole.headers["content-disposition"]
    size = len(wav)
    for spec, first, last in [("bytes=0-99", 0, 99), ("bytes=100-", 100, size - 1),
                              ("bytes=-10", size - 10, size - 1)]:
        part = await client.get(url, headers={**headers, "Range": spec})
        assert part.status_code == 206, spec
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == wav[first:last + 1]
    beyond = await client.get(url, headers={**headers, "Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"


async def test_webhook_deliveries_are_listed_or_said_to_be_unavailable(
    client: httpx.AsyncClient, headers: dict[str, str], stranger: dict[str, str], wav: bytes
) -> None:
    job = await submit(client, headers, wav)
    await stream_all(client, job["job_id"], headers)
    response = await client.get(f"/api/v1/jobs/{job['job_id']}/webhooks", headers=headers)
    if response.status_code == 501:  # a server without webhook deliveries
        assert response.json()["error"] == "UNIMPLEMENTED"
        return
    assert response.status_code == 200, response.text
    assert response.json() == {"job_id": job["job_id"], "deliveries": []}  # no webhook_url
    other = await client.get(f"/api/v1/jobs/{job['job_id']}/webhooks", headers=stranger)
    assert other.status_code == 404


async def test_a_server_without_webhook_deliveries_answers_501(
    app: Starlette, client: httpx.AsyncClient, headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bridge in front of an older server: UNIMPLEMENTED is said plainly, not a 500."""

    class Unimplemented(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.UNIMPLEMENTED

        def details(self) -> str:
            return "Method not found!"

    class OlderServer:
        async def ListWebhookDeliveries(self, *args: object, **kwargs: object) -> None:
            raise Unimplemented()

    monkeypatch.setattr(app.state, "jobs", OlderServer())
    response = await client.get(f"/api/v1/jobs/{uuid.uuid4()}/webhooks", headers=headers)
    assert (response.status_code, response.json()["error"]) == (501, "UNIMPLEMENTED")
    assert "webhook" in response.json()["message"]
