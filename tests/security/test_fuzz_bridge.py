"""Bad input over HTTP, property-based: whatever a browser or a script sends to any bridge
endpoint, the answer is 2xx or a 4xx with a JSON `{"error", "message"}` body, never a 5xx
or a traceback; multipart bodies that lie about their size are stopped at the limit."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.applications import Starlette

from bridge.routes_jobs import FORM_OVERHEAD
from bridge.web import web_dir
from server.app import OctaviaServer
from server.auth import TokenAuthority
from tests.security import fuzz
from tests.security.forms import BOUNDARY, FORM, asgi, chunks, multipart

MAX_UPLOAD = 64 * 1024


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"max_upload_bytes": MAX_UPLOAD, "max_media_seconds": 30, "queue_size": 100_000,
            "max_active_jobs_per_user": 100_000}


@pytest.fixture
def headers(tokens: TokenAuthority) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.mint('alice')}"}


@pytest.fixture
async def finished(client: httpx.AsyncClient, headers: dict[str, str], wav: bytes) -> str:
    response = await client.post("/api/v1/jobs", headers=headers, data={"target_language": "es"},
                                 files={"file": ("clip.wav", wav, "audio/wav")})
    job_id: str = response.json()["job_id"]
    async with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", headers=headers) as stream:
        await stream.aread()
    return job_id


def check(response: httpx.Response | tuple[int, bytes]) -> int:
    """The status, after checking it is not a server error and errors say what is wrong."""
    status, body = ((response.status_code, response.content)
                    if isinstance(response, httpx.Response) else response)
    assert status < 500, (status, body[:500])
    assert b"Traceback" not in body
    if status >= 400:
        payload = json.loads(body)
        assert isinstance(payload["error"], str) and payload["error"], payload
        assert isinstance(payload["message"], str) and payload["message"], payload
    return status


def segment(text: str) -> str:
    """A path segment as a client would put it in a URL."""
    return quote(text, safe="") or "%20"


@fuzz.FUZZ
@given(job_id=fuzz.url_job_ids,
       path=st.sampled_from(["status", "stream", "cancel", "stream-ticket",
                             "artifacts/dubbed.wav"]))
@example(job_id="..", path="status").via("dot-dot segment")
async def test_any_job_id_in_any_path(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str, path: str
) -> None:
    method = "POST" if path in ("cancel", "stream-ticket") else "GET"
    response = await client.request(method, f"/api/v1/jobs/{segment(job_id)}/{path}",
                                    headers=headers)
    assert check(response) in (400, 404, 405), response.text


@fuzz.FUZZ
@given(page_size=st.one_of(st.text(max_size=30), fuzz.huge_ints.map(str)),
       page_token=st.one_of(fuzz.page_tokens, st.text(max_size=200)))
@example(page_size="99999999999999999999", page_token="").via("page size beyond int32")
@example(page_size="-5", page_token="").via("negative page size")
async def test_list_parameters(
    client: httpx.AsyncClient, headers: dict[str, str], page_size: str, page_token: str
) -> None:
    response = await client.get("/api/v1/jobs", headers=headers,
                                params={"page_size": page_size, "page_token": page_token})
    check(response)


@fuzz.FUZZ
@given(last=st.one_of(st.text(max_size=30), fuzz.huge_ints.map(str)),
       where=st.sampled_from(["header", "query"]))
@example(last=str(2**70), where="header").via("Last-Event-ID beyond int64")
async def test_stream_resume_ids(
    client: httpx.AsyncClient, headers: dict[str, str], finished: str, last: str, where: str
) -> None:
    url = f"/api/v1/jobs/{finished}/stream"
    if where == "header":
        if not _header_safe(last):
            return
        response = await client.get(url, headers={**headers, "Last-Event-ID": last})
    else:
        response = await client.get(url, headers=headers, params={"last_event_id": last})
    check(response)


@fuzz.FUZZ
@given(ticket=st.one_of(fuzz.url_text, st.text(alphabet="abc.-_", max_size=400)))
async def test_stream_tickets(
    client: httpx.AsyncClient, finished: str, ticket: str
) -> None:
    response = await client.get(f"/api/v1/jobs/{finished}/stream", params={"ticket": ticket})
    assert check(response) == 401


@fuzz.FUZZ
@given(name=st.one_of(fuzz.url_text, st.just("dubbed.wav")),
       range_header=st.one_of(
           st.none(), st.text(max_size=40),
           st.builds(lambda a, b: f"bytes={a}-{b}", st.one_of(st.just(""), fuzz.huge_ints),
                     st.one_of(st.just(""), fuzz.huge_ints))),
       download=st.sampled_from(["", "1", "\x00"]))
@example(name="dubbed.wav", range_header=f"bytes={2**64}-", download="").via("huge range")
@example(name="..%2F..%2Fetc%2Fpasswd", range_header=None, download="").via("encoded traversal")
async def test_artifact_names_and_ranges(
    client: httpx.AsyncClient, headers: dict[str, str], finished: str, name: str,
    range_header: str | None, download: str,
) -> None:
    extra = {} if range_header is None or not _header_safe(range_header) else {
        "Range": range_header}
    response = await client.get(f"/api/v1/jobs/{finished}/artifacts/{segment(name)}",
                                headers={**headers, **extra}, params={"download": download})
    status = check(response)
    if name != "dubbed.wav":
        # 307: a name ending in "/" is redirected to the route without it.
        assert status in (307, 400, 404), (name, status)
    else:
        assert b"root:" not in response.content


@fuzz.FUZZ
@given(path=st.one_of(
    st.lists(st.sampled_from(["..", "%2e%2e", "..%2f", "%2e%2e%2f", ".", "etc", "passwd",
                              "index.html", "octavia.js", "%00", "\\..", "//", "web"]),
             min_size=1, max_size=8).map("/".join),
    fuzz.url_text.map(segment)))
@example(path="..%2f..%2f..%2f..%2fetc%2fpasswd").via("encoded traversal")
async def test_static_files_stay_in_their_folder(client: httpx.AsyncClient, path: str) -> None:
    try:
        response = await client.get(f"/web/{path}")
    except httpx.InvalidURL:
        return  # not a URL a client can send
    assert response.status_code < 500, (path, response.status_code)
    assert b"root:" not in response.content
    if response.status_code == 200:  # a file of the web folder, whatever the path said
        assert response.content in _web_files(), path


def _web_files() -> set[bytes]:
    return {file.read_bytes() for file in web_dir().rglob("*") if file.is_file()}


def _header_safe(value: str) -> bool:
    return value == value.strip() and all(32 <= ord(c) < 127 for c in value)


# --- submitting ------------------------------------------------------------------------

filenames = st.one_of(
    st.binary(max_size=300).filter(lambda b: b'"' not in b and b"\r" not in b
                                   and b"\n" not in b),
    st.sampled_from([b"\xff\xfe.wav", b"../../../../etc/passwd", b"..", b".", b"",
                     b"C:\\evil\\..\\x.wav", "éü.wav".encode("latin-1"),
                     "日本語.wav".encode(), b"a" * 1000, b"%00.wav", b"\x00.wav"]),
)


@fuzz.FUZZ
@given(target=fuzz.languages, source=fuzz.languages, filename=filenames,
       mix_mode=st.one_of(st.just(""), st.text(max_size=20)),
       request_id=st.one_of(st.just(""), fuzz.weird_text), content_is_media=st.booleans())
@example(target="es", source="", filename=b"\xff\xfe../../x.wav", mix_mode="",
         request_id="", content_is_media=True).via("non-UTF-8 file name")
async def test_submit_form_fields(
    client: httpx.AsyncClient, headers: dict[str, str], wav: bytes, server: OctaviaServer,
    target: str, source: str,
    filename: bytes, mix_mode: str, request_id: str, content_is_media: bool,
) -> None:
    fields = {"target_language": target.encode(), "source_language": source.encode(),
              "mix_mode": mix_mode.encode(), "request_id": request_id.encode()}
    body = multipart(fields, filename, wav if content_is_media else b"not media at all")
    response = await client.post("/api/v1/jobs", content=body,
                                 headers={**headers, "Content-Type": FORM})
    if check(response) == 201:
        record = await server.store.get(response.json()["job_id"])
        assert fuzz.inside(record.media_path, server.settings.uploads_dir), record.media_path


@fuzz.FUZZ
@given(body=st.one_of(st.binary(max_size=2000),
                      st.builds(lambda b: f"--{BOUNDARY}\r\n".encode() + b, st.binary())),
       content_type=st.sampled_from([FORM, "multipart/form-data", "multipart/form-data; "
                                     "boundary=", "application/json", "text/plain", ""]))
async def test_submit_bodies_that_are_not_forms(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes, content_type: str
) -> None:
    response = await client.post("/api/v1/jobs", content=body,
                                 headers={**headers, "Content-Type": content_type})
    assert check(response) in (400, 413, 415), response.text


# --- bodies that lie about their size, straight through ASGI -------------------------


@fuzz.FUZZ
@given(declared=st.one_of(st.none(), st.integers(min_value=0, max_value=2**70).map(str),
                          st.sampled_from(["-1", "abc", "1e9", " 10", "0x10", ""])),
       size=st.sampled_from([0, 100, MAX_UPLOAD // 2, MAX_UPLOAD + FORM_OVERHEAD + 1,
                             3 * MAX_UPLOAD]),
       truncate=st.booleans())
@example(declared="100", size=3 * MAX_UPLOAD, truncate=False).via("says small, is large")
@example(declared=str(10 * MAX_UPLOAD), size=100, truncate=False).via("says large, is small")
@example(declared="1000000", size=MAX_UPLOAD // 2, truncate=True).via("ends early")
async def test_multipart_bodies_that_lie_about_their_size(
    app: Starlette, headers: dict[str, str], wav: bytes, declared: str | None, size: int,
    truncate: bool,
) -> None:
    content = (wav * (size // len(wav) + 1))[:size]
    body = multipart({"target_language": b"es"}, b"clip.wav", content)
    if truncate:
        body = body[: len(body) // 2]
    sent = {**headers, "Content-Type": FORM}
    if declared is not None:
        sent["Content-Length"] = declared
    status, response = await asgi(app, sent, chunks(body))
    status = check((status, response))
    if len(body) > MAX_UPLOAD + FORM_OVERHEAD:
        assert status == 413, (status, response)
    if truncate:
        assert status in (400, 413), (status, response)
