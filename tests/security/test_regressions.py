"""Regressions the security suites found, each named for what broke."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import grpc
import httpx
import pytest
from grpc import aio
from octavia.errors import Reason, from_rpc_error
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc
from starlette.applications import Starlette

from server.auth import TokenAuthority
from server.interceptors import AuthInterceptor
from tests.security.forms import FORM, asgi, chunks, multipart
from tests.support.jobs import submit_request

Auth = tuple[tuple[str, str], ...]


async def test_a_uri_with_a_symlink_loop_nul_byte_or_overlong_name_is_invalid_not_internal(
    stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, media_root: Path
) -> None:
    """Path.resolve raised RuntimeError (loop), ValueError (NUL) or OSError (too long)
    out of `resolve_uri`: INTERNAL. Resolution errors now mean URI_NOT_ALLOWED."""
    os.symlink(media_root / "b", media_root / "a")
    os.symlink(media_root / "a", media_root / "b")
    for uri in ("a", "clip.wav\x00.txt", "x" * 5000, "file:///" + "y/" * 3000):
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.SubmitJob(pb.SubmitJobRequest(uri=uri, target_language="es"),
                                 metadata=auth)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, uri[:20]
        assert from_rpc_error(caught.value).reason == Reason.URI_NOT_ALLOWED


async def test_a_string_that_is_not_utf8_on_the_wire_is_invalid_argument_not_unknown(
    channel: aio.Channel, auth: Auth, wav: bytes
) -> None:
    """protobuf's parse error escaped the request deserializer: UNKNOWN, with the parser's
    text. The auth interceptor now parses tolerantly and answers INVALID_ARGUMENT, after
    authentication."""
    body = submit_request(wav).SerializeToString() + b"\x1a\x02\xff\xfe"  # filename (3)
    submit = channel.unary_unary("/octavia.v1.JobService/SubmitJob")
    with pytest.raises(aio.AioRpcError) as caught:
        await submit(body, metadata=auth)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in (caught.value.details() or "")
    with pytest.raises(aio.AioRpcError) as anonymous:
        await submit(body)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_file_with_no_stream_at_all_is_unreadable_not_internal(
    stub: jobs_pb2_grpc.JobServiceStub, auth: Auth
) -> None:
    """The duration probe indexed the first audio stream of a container that had none
    (content b"["): IndexError, INTERNAL. It now reports no duration, so MEDIA_UNREADABLE."""
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.SubmitJob(submit_request(b"["), metadata=auth)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert from_rpc_error(caught.value).reason == Reason.MEDIA_UNREADABLE


async def test_an_rpc_the_server_lacks_is_unimplemented_not_internal(
    tokens: TokenAuthority, auth: Auth
) -> None:
    """The generated servicer's NotImplementedError was mapped to INTERNAL by the error
    interceptor; it is UNIMPLEMENTED now."""
    server = aio.server(interceptors=[AuthInterceptor(tokens)])
    jobs_pb2_grpc.add_JobServiceServicer_to_server(  # type: ignore[no-untyped-call]
        jobs_pb2_grpc.JobServiceServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            with pytest.raises(aio.AioRpcError) as caught:
                await stub.GetStatus(pb.GetStatusRequest(job_id="x"), metadata=auth)
    finally:
        await server.stop(None)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_malformed_multipart_body_is_a_400_not_a_500(
    client: httpx.AsyncClient, tokens: TokenAuthority
) -> None:
    """python-multipart's MultipartParseError is not Starlette's MultiPartException, so it
    escaped `Request.form()`: 500. The bridge now parses the form itself and answers 400."""
    headers = {"Authorization": f"Bearer {tokens.mint('alice')}", "Content-Type": FORM}
    response = await client.post("/api/v1/jobs", content=b"--garbage\x00", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_ARGUMENT"
    assert "multipart" in response.json()["message"]


async def test_a_multipart_body_cut_short_in_its_file_closes_the_spooled_file(
    app: Starlette, tokens: TokenAuthority, wav: bytes
) -> None:
    """A body ending inside the file part parsed "successfully" without that part, and
    the file Starlette had spooled for it was never closed (ResourceWarning at GC). Every
    file the parser spooled and the form does not hold is closed now."""
    body = multipart({"target_language": b"es"}, b"clip.wav", wav)
    headers = {"Authorization": f"Bearer {tokens.mint('alice')}", "Content-Type": FORM}
    status, response = await asgi(app, headers, chunks(body[: len(body) // 2]))
    assert status == 400, response
    gc.collect()  # an unclosed file would warn here, and warnings are errors


@pytest.mark.parametrize(("path", "params", "headers"), [
    ("/api/v1/jobs", {"page_size": str(2**40)}, {}),
    ("/api/v1/jobs/00000000-0000-4000-8000-000000000000/stream", {},
     {"Last-Event-ID": str(2**70)}),
])
async def test_a_number_beyond_its_rpc_field_is_a_400_not_a_500(
    client: httpx.AsyncClient, tokens: TokenAuthority, path: str, params: dict[str, str],
    headers: dict[str, str],
) -> None:
    """`page_size` / `Last-Event-ID` went into int32 / int64 protobuf fields unchecked, and
    protobuf's ValueError was a 500. The bridge checks the range first."""
    auth = {"Authorization": f"Bearer {tokens.mint('alice')}"}
    response = await client.get(path, params=params, headers={**auth, **headers})
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_ARGUMENT"


async def test_watching_after_a_sequence_past_the_last_event_is_invalid_not_internal(
    stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, wav: bytes
) -> None:
    """`after_sequence` beyond PostgreSQL's integer column made the event query fail:
    INTERNAL (and on SQLite a live job's watch waited for events that could never come).
    WatchJob now refuses a sequence past the job's last event."""
    job = (await stub.SubmitJob(submit_request(wav), metadata=auth)).job
    for after in (job.sequence + 1_000, 2**31, 2**63 - 1):
        call = stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id, after_sequence=after),
                             metadata=auth)
        with pytest.raises(aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "past the job's last event" in (caught.value.details() or "")


async def test_a_static_path_with_a_nul_byte_is_a_404_not_a_500(
    client: httpx.AsyncClient,
) -> None:
    """Starlette's StaticFiles let `os.stat`'s ValueError ("embedded null byte") escape:
    500. The bridge's StaticFiles treats such a path as missing."""
    response = await client.get("/web/octavia.js%00.txt")
    assert response.status_code == 404
    assert response.json()["error"] == "NOT_FOUND"
