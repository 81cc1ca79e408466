"""Downloading results through the `ReadArtifact` stream, with byte ranges for players."""

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
    stub = request.app.state.jobs
    span = None
    range_header = request.headers.get("range")
    if range_header:
        size = await _listed_size(stub, caller, job_id, name)
        if size is not None:
            span = parse_range(range_header, size)
    offset, length = (span[0], span[1] - span[0] + 1) if span else (0, 0)
    call = stub.ReadArtifact(
        pb.ReadArtifactRequest(job_id=job_id, name=name, offset=offset, length=length),
        metadata=caller.metadata,
    )
    try:
        first = await call.read()
    except BaseException:
        call.cancel()
        raise
    if first is aio.EOF:
        raise BridgeError(502, "INTERNAL", "the server sent no data for this artifact")
    artifact: pb.Artifact = first.artifact
    disposition = "attachment" if request.query_params.get("download") else "inline"
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{artifact.sha256}"',
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(artifact.name)}",
    }
    status = 200
    if span:
        status = 206
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{artifact.size_bytes}"
        headers["Content-Length"] = str(length)
    else:
        headers["Content-Length"] = str(artifact.size_bytes)
    return StreamingResponse(_chunks(call, first), status_code=status,
                             media_type=artifact.media_type or "application/octet-stream",
                             headers=headers)


async def _listed_size(stub: Any, caller: Caller, job_id: str, name: str) -> int | None:
    """The artifact's size when the job lists it; None lets ReadArtifact say what's wrong."""
    response = await stub.GetStatus(pb.GetStatusRequest(job_id=job_id), metadata=caller.metadata)
    for artifact in response.job.artifacts:
        if artifact.name == name:
            return int(artifact.size_bytes)
    return None


async def _chunks(call: Any, first: pb.ReadArtifactResponse) -> AsyncIterator[bytes]:
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
]
