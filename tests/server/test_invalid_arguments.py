"""Bad requests get INVALID_ARGUMENT with a message that says what is wrong, and change nothing."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from octavia.errors import Reason, from_rpc_error
from octavia.v1 import jobs_pb2 as pb

from tests.support.jobs import submit, submit_request


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"max_upload_bytes": 64 * 1024}


async def rejected(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return caught.value


@pytest.mark.parametrize(
    ("fields", "message", "reason"),
    [
        ({"content": b""}, "no source media", Reason.INVALID_ARGUMENT),
        ({"target_language": ""}, "target_language is required", Reason.UNSUPPORTED_LANGUAGE),
        ({"target_language": "klingon"}, "unsupported target_language",
         Reason.UNSUPPORTED_LANGUAGE),
        ({"source_language": "xx"}, "unsupported source_language", Reason.UNSUPPORTED_LANGUAGE),
        ({"content": b"this is not media at all"}, "", Reason.MEDIA_UNREADABLE),
        ({"request_id": "r" * 300}, "request_id", Reason.INVALID_ARGUMENT),
    ],
    ids=["no source", "no target", "unknown target", "unknown source", "not media",
         "long request id"],
)
async def test_submit_rejects(stub, auth, wav, fields, message, reason) -> None:
    request = submit_request(wav, **fields)
    if fields.get("content") == b"":
        request.ClearField("content")

    error = await rejected(stub.SubmitJob(request, metadata=auth))

    assert message in error.details()
    assert from_rpc_error(error).reason == reason
    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=auth)
    assert list(listed.jobs) == [], "a rejected request stores nothing"


async def test_regional_language_codes_are_accepted_as_their_language(stub, auth, wav) -> None:
    job = await submit(stub, wav, auth, target_language="pt-BR")
    assert job.target_language == "pt"


@pytest.mark.parametrize("method", ["GetStatus", "CancelJob", "WatchJob"])
@pytest.mark.parametrize("job_id", ["", "42", "../../etc/passwd", "x" * 5000])
async def test_malformed_job_ids_are_invalid(stub, auth, method, job_id) -> None:
    request = getattr(pb, f"{method}Request")(job_id=job_id)
    call = getattr(stub, method)(request, metadata=auth)
    if method == "WatchJob":
        error = await rejected(call.read())
    else:
        error = await rejected(call)
    assert "malformed job_id" in error.details()


async def test_uri_under_the_media_root_is_read_in_place(stub, auth, wav, media_root) -> None:
    (media_root / "talk.wav").write_bytes(wav)
    response = await stub.SubmitJob(pb.SubmitJobRequest(uri="talk.wav", target_language="es"),
                                    metadata=auth)
    assert response.job.source_filename == "talk.wav"


@pytest.mark.parametrize(
    "uri",
    ["/etc/passwd", "../outside.wav", "file:///etc/passwd", "http://example.com/a.wav",
     "missing.wav", "link.wav", "s3://bucket/a.wav"],
)
async def test_uri_outside_the_media_root_is_rejected(
    stub, auth, wav, media_root: Path, uri: str
) -> None:
    (media_root.parent / "outside.wav").write_bytes(wav)
    (media_root / "link.wav").symlink_to(media_root.parent / "outside.wav")

    error = await rejected(stub.SubmitJob(pb.SubmitJobRequest(uri=uri, target_language="es"),
                                          metadata=auth))

    assert from_rpc_error(error).reason == Reason.URI_NOT_ALLOWED
    assert "media root" in error.details()


async def test_list_rejects_negative_page_size_and_forged_tokens(stub, auth) -> None:
    error = await rejected(stub.ListJobs(pb.ListJobsRequest(page_size=-1), metadata=auth))
    assert "page_size" in error.details()
    error = await rejected(stub.ListJobs(pb.ListJobsRequest(page_token="bogus!"), metadata=auth))
    assert "page_token" in error.details()
