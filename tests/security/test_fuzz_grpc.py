"""Bad input over gRPC, property-based: whatever the arguments of any RPC, the answer is
OK or a 4xx-like status (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, or
RESOURCE_EXHAUSTED for media over a limit) with a message
and a reason, never UNKNOWN / INTERNAL, and no file outside its directory is read."""

from __future__ import annotations

import io
import os
import uuid
import wave
from pathlib import Path

import grpc
import pytest
from grpc import aio
from hypothesis import example, given
from hypothesis import strategies as st
from octavia.errors import Reason, from_rpc_error
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc

from server.app import OctaviaServer
from tests.security import fuzz, rpc
from tests.support.fixtures import database_url_on_both_stores as database_url_on_both_stores
from tests.support.jobs import submit, submit_request, watch_all

Auth = tuple[tuple[str, str], ...]

CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                 grpc.StatusCode.FAILED_PRECONDITION,
                 grpc.StatusCode.RESOURCE_EXHAUSTED}  # an upload or media over its limit
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED
MAX_UPLOAD = 64 * 1024


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"max_upload_bytes": MAX_UPLOAD, "max_media_seconds": 30, "queue_size": 100_000,
            "max_active_jobs_per_user": 100_000}


async def outcome(call: object) -> grpc.StatusCode:
    """The status of a call (awaited, or read to its end when it streams)."""
    try:
        if hasattr(call, "__aiter__"):
            _ = [message async for message in call]  # type: ignore[attr-defined]
        else:
            await call  # type: ignore[misc]
    except aio.AioRpcError as error:
        code = error.code()
        if code == UNIMPLEMENTED:
            return code
        assert code in CLIENT_ERRORS, (code, error.details())
        assert error.details(), code
        info = from_rpc_error(error)
        assert info.reason not in ("", Reason.INTERNAL), info
        return code
    return grpc.StatusCode.OK


async def stored_media(stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, server: OctaviaServer,
                       request: pb.SubmitJobRequest) -> str | None:
    """Where the server put an accepted submission's media; None when it was refused
    (with a client error and a message: `outcome` checks that)."""
    call = stub.SubmitJob(request, metadata=auth)
    if await outcome(call) != grpc.StatusCode.OK:
        return None
    response = await call
    return (await server.store.get(response.job.job_id)).media_path


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@pytest.fixture
async def finished(stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, wav: bytes) -> str:
    job = await submit(stub, wav, auth)
    await watch_all(stub, job.job_id, auth)
    return job.job_id


@fuzz.FUZZ
@given(job_id=fuzz.job_ids)
@example(job_id="../../etc/passwd").via("traversal")
async def test_every_rpc_taking_a_job_id(
    server: OctaviaServer, auth: Auth, job_id: str
) -> None:
    async with aio.insecure_channel(server.address) as channel:
        for method in rpc.methods():
            if "job_id" not in {field.name for field in method.input_type.fields}:
                continue
            request = rpc.request_for(method, job_id=job_id, name="dubbed.wav")
            code = await _invoke_outcome(channel, method, request, auth)
            if code == grpc.StatusCode.UNIMPLEMENTED:
                continue  # an RPC in the contract this server does not offer yet
            if not _is_uuid(job_id):
                assert code == grpc.StatusCode.INVALID_ARGUMENT, (method.name, job_id)


async def _invoke_outcome(channel: aio.Channel, method: object, request: object,
                          auth: Auth) -> grpc.StatusCode:
    return await outcome(rpc.invoke(channel, method, request, auth))  # type: ignore[arg-type]


@fuzz.FUZZ
@given(name=st.one_of(fuzz.weird_text, st.sampled_from(["dubbed.wav", "target.srt"])),
       offset=fuzz.int64, length=fuzz.int64)
async def test_read_artifact_names_and_ranges(
    stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, finished: str, name: str, offset: int,
    length: int,
) -> None:
    request = pb.ReadArtifactRequest(job_id=finished, name=name, offset=offset, length=length)
    code = await outcome(stub.ReadArtifact(request, metadata=auth))
    if name not in ("dubbed.wav", "target.srt"):
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), name


@fuzz.FUZZ
@given(after=fuzz.int64)
@example(after=2**31).via("beyond PostgreSQL's integer column")
async def test_watch_after_any_sequence(
    stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, finished: str, after: int
) -> None:
    reply = await stub.GetStatus(pb.GetStatusRequest(job_id=finished), metadata=auth)
    last = reply.job.sequence
    call = stub.WatchJob(pb.WatchJobRequest(job_id=finished, after_sequence=after),
                         metadata=auth)
    code = await outcome(call)
    assert (code == grpc.StatusCode.INVALID_ARGUMENT) == (after < 0 or after > last), after


@fuzz.FUZZ
@given(page_size=fuzz.int32, page_token=fuzz.page_tokens)
async def test_list_jobs_pages(
    stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, finished: str, page_size: int,
    page_token: str,
) -> None:
    code = await outcome(stub.ListJobs(
        pb.ListJobsRequest(page_size=page_size, page_token=page_token), metadata=auth))
    if page_size < 0:
        assert code == grpc.StatusCode.INVALID_ARGUMENT


@fuzz.FUZZ
@given(target=fuzz.languages, source=fuzz.languages, filename=fuzz.weird_text,
       request_id=st.one_of(st.just(""), fuzz.weird_text), mix_mode=fuzz.int32)
async def test_submit_fields(
    stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, wav: bytes, server: OctaviaServer,
    target: str, source: str, filename: str, request_id: str, mix_mode: int,
) -> None:
    request = submit_request(wav, target_language=target, source_language=source,
                             filename=filename, request_id=request_id)
    request.options.mix_mode = mix_mode  # type: ignore[assignment]
    media_path = await stored_media(stub, auth, server, request)
    if media_path is not None:
        assert fuzz.inside(media_path, server.settings.uploads_dir), media_path


def _wav(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x02" * int(seconds * rate))
    return buffer.getvalue()


def _lying_wav(frames: int) -> bytes:
    """A WAV whose header claims `frames` frames but carries a few."""
    data = bytearray(_wav(0.05))
    size = frames * 2
    data[4:8] = (36 + size).to_bytes(4, "little", signed=False) if size < 2**32 - 36 else (
        b"\xff\xff\xff\xff")
    data[40:44] = min(size, 2**32 - 1).to_bytes(4, "little")
    return bytes(data)


media = st.one_of(
    st.binary(min_size=1, max_size=2048),
    st.builds(lambda n: _wav(0.5)[:n], st.integers(min_value=1, max_value=8000)),
    st.builds(_lying_wav, st.integers(min_value=0, max_value=2**31)),
    st.sampled_from([b"RIFF", b"RIFF\xff\xff\xff\xffWAVE", b"\x1aE\xdf\xa3" + b"\0" * 64,
                     b"ID3\x04\0\0\0\0\0\0" + b"\xff\xfb" * 100, b"\0\0\0\x18ftypmp42",
                     b"%PDF-1.7\n", b"#!/bin/sh\nrm -rf /\n", _wav(60, 4000)]),
)


@fuzz.FUZZ
@given(content=media)
@example(content=b"[").via("no streams at all")
async def test_submit_content_that_is_not_good_media(
    stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, content: bytes
) -> None:
    code = await outcome(stub.SubmitJob(submit_request(content), metadata=auth))
    # RESOURCE_EXHAUSTED: over the upload limit, or media (60 s) longer than the 30 s one.
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.RESOURCE_EXHAUSTED)


@pytest.fixture
def planted(media_root: Path, wav: bytes) -> Path:
    """A media root with a good file, and ways out of it: links to a file outside, to
    the outside folder, to /etc, a dangling link, a link loop, a folder, a fifo."""
    outside = media_root.parent / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(wav)
    (media_root / "good.wav").write_bytes(wav)
    (media_root / "sub").mkdir()
    (media_root / "sub" / "inner.wav").write_bytes(wav)
    (media_root / "link.wav").symlink_to(outside / "secret.wav")
    (media_root / "dir-link").symlink_to(outside)
    (media_root / "etc").symlink_to("/etc")
    (media_root / "dangling.wav").symlink_to(media_root / "nothing.wav")
    (media_root / "loop-a").symlink_to(media_root / "loop-b")
    (media_root / "loop-b").symlink_to(media_root / "loop-a")
    (media_root / "self").symlink_to(media_root / "self")
    os.mkfifo(media_root / "fifo.wav")
    return media_root


PARTS = ["good.wav", "sub", "inner.wav", "link.wav", "dir-link", "secret.wav", "etc",
         "passwd", "dangling.wav", "loop-a", "loop-b", "self", "fifo.wav", "..", ".", "",
         "outside", "media", "%2e%2e", "\x00", "a" * 300]

uris = st.one_of(
    st.builds(lambda prefix, parts: prefix + "/".join(parts),
              st.sampled_from(["", "/", "file://", "file:///", "file://localhost/", "./",
                               "../", "http://x/", "s3://b/", "\\\\"]),
              st.lists(st.sampled_from(PARTS), min_size=1, max_size=5)),
    fuzz.weird_text,
)


@fuzz.FUZZ
@given(uri=uris)
@example(uri="loop-a").via("symlink loop")
@example(uri="good.wav\x00.txt").via("NUL byte")
@example(uri="a" * 5000).via("name too long")
@example(uri="fifo.wav").via("a fifo would block a reader")
async def test_submit_by_uri_never_leaves_the_media_root(
    stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, server: OctaviaServer, planted: Path,
    uri: str,
) -> None:
    request = pb.SubmitJobRequest(uri=uri, target_language="es")
    media_path = await stored_media(stub, auth, server, request)
    if media_path is not None:
        assert fuzz.inside(media_path, planted), (uri, media_path)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand."""
    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            low, value = value & 0x7F, value >> 7
            out.append(low | (0x80 if value else 0))
            if not value:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


@fuzz.FUZZ
@given(raw=st.binary(min_size=1, max_size=64).filter(lambda b: not _utf8(b)),
       which=st.integers(min_value=0, max_value=1000))
@example(raw=b"\xff\xfe../../etc/passwd", which=0).via("non-UTF-8 file name")
async def test_strings_that_are_not_utf8_on_the_wire(
    server: OctaviaServer, auth: Auth, wav: bytes, raw: bytes, which: int
) -> None:
    """A client that writes the wire format itself can send any bytes in a string field;
    protobuf refuses to parse them, and that is the client's mistake, not ours."""
    strings = [(method, field) for method in rpc.methods()
               for field in method.input_type.fields if field.type == field.TYPE_STRING]
    method, field = strings[which % len(strings)]
    valid = rpc.request_for(method, job_id=str(uuid.uuid4()), name="dubbed.wav",
                            content=wav, target_language="es").SerializeToString()
    body = valid + _field(field.number, raw)
    path = f"/{rpc.SERVICE.full_name}/{method.name}"
    async with aio.insecure_channel(server.address) as channel:
        if method.server_streaming:
            call: object = channel.unary_stream(path)(body, metadata=auth)
        else:
            call = channel.unary_unary(path)(body, metadata=auth)
        code = await outcome(call)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (method.name, field.name)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
