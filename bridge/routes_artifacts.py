"""Downloading results (`ReadArtifact`, any version) and the source media (`ReadSource`),
with byte ranges for players."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from grpc import aio
from octavia.v1 import jobs_pb2 as pb
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from . import _params
from .auth import Caller, authenticate
from .errors import BridgeError

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`(first, last)` byte of a single `Range: bytes=` spec; None to send everything."""
    match = _RANGE.match(header)
    if match is None or size == 0:
        return None  # several ranges, another unit or garbage: a 200 is a valid answer
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size:
        raise _unsatisfiable(size)
    if last < first:
        return None
    return first, min(last, size - 1)


def _unsatisfiable(size: int) -> BridgeError:
    return BridgeError(416, "RANGE_NOT_SATISFIABLE", f"the artifact has {size} bytes",
                       headers={"Content-Range": f"bytes */{size}"})


async def read_artifact(request: Request) -> Response:
    caller = authenticate(request)
    job_id = _params.job_id(request)
    name: str = request.path_params["name"]
    version = _params.int_query(request, "version", 0)  # 0: the current version
    if version < 0:
        raise BridgeError(400, "INVALID_ARGUMENT", "version must be a listed version (from 1)")
    stub = request.app.state.jobs
    span = None
    range_header = request.headers.get("range")
    if range_header:
        size = await _listed_size(stub, caller, job_id, name, version)
        if size is not None:
            span = parse_range(range_header, size)
    offset, length = (span[0], span[1] - span[0] + 1) if span else (0, 0)
    call = stub.ReadArtifact(
        pb.ReadArtifactRequest(job_id=job_id, name=name, offset=offset, length=length,
                               version=version),
        metadata=caller.metadata,
    )
    first = await _first(call, "artifact")
    artifact: pb.Artifact = first.artifact
    headers = {
        "ETag": f'"{artifact.sha256}"',
        # Without ?version= the URL names whatever the current version is: a re-dub
        # changes it, so the browser must check before reusing its copy.
        "Cache-Control": "private, max-age=3600" if version else "private, no-cache",
    }
    return _file_response(request, call, first, artifact.name, artifact.media_type,
                          artifact.size_bytes, span, headers)


async def read_source(request: Request) -> Response:
    """The job's source media as submitted (`ReadSource`), with byte ranges for players."""
    caller = authenticate(request)
    job_id = _params.job_id(request)
    stub = request.app.state.jobs
    span = None
    range_header = request.headers.get("range")
    if range_header:
        # Its size comes with the first chunk: ask for one byte to learn it.
        probe = stub.ReadSource(pb.ReadSourceRequest(job_id=job_id, length=1),
                                metadata=caller.metadata)
        try:
            size = (await _first(probe, "source")).size_bytes
        finally:
            probe.cancel()
        span = parse_range(range_header, size)
    offset, length = (span[0], span[1] - span[0] + 1) if span else (0, 0)
    call = stub.ReadSource(pb.ReadSourceRequest(job_id=job_id, offset=offset, length=length),
                           metadata=caller.metadata)
    first = await _first(call, "source")
    # Never changes for a job; private: only its owner may read it.
    headers = {"Cache-Control": "private, max-age=3600"}
    return _file_response(request, call, first, first.filename, first.media_type,
                          first.size_bytes, span, headers)


async def _first(call: Any, what: str) -> Any:
    """The first message of a download stream; its errors are still an HTTP status."""
    try:
        first = await call.read()
    except BaseException:
        call.cancel()
        raise
    if first is aio.EOF:
        raise BridgeError(502, "INTERNAL", f"the server sent no data for this {what}")
    return first


def _file_response(
    request: Request, call: Any, first: Any, name: str, media_type: str, size: int,
    span: tuple[int, int] | None, headers: dict[str, str],
) -> Response:
    disposition = "attachment" if request.query_params.get("download") else "inline"
    headers = {
        "Accept-Ranges": "bytes",
        **headers,
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
    }
    status = 200
    if span:
        status = 206
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
        headers["Content-Length"] = str(span[1] - span[0] + 1)
    else:
        headers["Content-Length"] = str(size)
    return StreamingResponse(_chunks(call, first), status_code=status,
                             media_type=media_type or "application/octet-stream",
                             headers=headers)


async def _listed_size(
    stub: Any, caller: Caller, job_id: str, name: str, version: int
) -> int | None:
    """The artifact's size when the job (or the asked version) lists it; None lets
    ReadArtifact say what's wrong."""
    if version:
        versions = await stub.ListVersions(pb.ListVersionsRequest(job_id=job_id),
                                           metadata=caller.metadata)
        listed = [a for v in versions.versions if v.version == version for a in v.artifacts]
    else:
        response = await stub.GetStatus(pb.GetStatusRequest(job_id=job_id),
                                        metadata=caller.metadata)
        listed = list(response.job.artifacts)
    for artifact in listed:
        if artifact.name == name:
            return int(artifact.size_bytes)
    return None


async def _chunks(
    call: Any, first: pb.ReadArtifactResponse | pb.ReadSourceResponse
) -> AsyncIterator[bytes]:
    try:
        if first.data:
            yield first.data
        while (chunk := await call.read()) is not aio.EOF:
            if chunk.data:
                yield chunk.data
    finally:
        call.cancel()


ROUTES = [
    Route("/api/v1/jobs/{job_id}/artifacts/{name}", read_artifact, methods=["GET"]),
    Route("/api/v1/jobs/{job_id}/source", read_source, methods=["GET"]),
]
