"""The job endpoints: submit, list, status, cancel, and the live stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio
from octavia.v1 import jobs_pb2 as pb
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message as ASGIMessage
from starlette.types import Receive

from server.settings import Settings

from . import _params
from .auth import authenticate, authenticate_stream
from .convert import MIX_MODES, TERMINAL_STATUSES, job_to_json
from .errors import BridgeError
from .sse import EventSourceResponse, Message

log = logging.getLogger(__name__)

UNARY_TIMEOUT = 60.0
"""Seconds a unary RPC may take (SubmitJob probes the media)."""
FORM_OVERHEAD = 64 * 1024
"""Room for the multipart framing and the text fields around the file."""
NO_STORE = {"Cache-Control": "no-store"}


def _stub(request: Request) -> Any:
    return request.app.state.jobs


async def submit_job(request: Request) -> Response:
    caller = authenticate(request)
    settings: Settings = request.app.state.settings
    limit = settings.max_upload_bytes
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BridgeError(415, "INVALID_ARGUMENT",
                          "send multipart/form-data with 'file' and 'target_language'")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise _too_large(limit)
    # The form spools the file to disk (python-multipart); reading it once below is the
    # only copy of the media held in memory.
    receive = _Bounded(request.receive, limit + FORM_OVERHEAD)
    try:
        form = await Request(request.scope, receive).form(max_files=1, max_fields=16)
    except HTTPException:
        if receive.exceeded:
            raise _too_large(limit) from None
        raise
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BridgeError(400, "INVALID_ARGUMENT", "the form needs a 'file' part")
        if upload.size is not None and upload.size > limit:
            raise _too_large(limit)
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        mix_mode = fields.get("mix_mode", "")
        if mix_mode and mix_mode not in MIX_MODES:
            raise BridgeError(400, "INVALID_ARGUMENT",
                              f"mix_mode must be one of {', '.join(MIX_MODES)}")
        message = pb.SubmitJobRequest(
            content=await upload.read(),
            filename=upload.filename or "",
            target_language=fields.get("target_language", ""),
            source_language=fields.get("source_language", ""),
            request_id=fields.get("request_id") or request.headers.get("idempotency-key", ""),
            options=pb.JobOptions(mix_mode=MIX_MODES.get(mix_mode, 0)),  # type: ignore[arg-type]
        )
    finally:
        await form.close()
    response = await _stub(request).SubmitJob(
        message, metadata=caller.metadata, timeout=UNARY_TIMEOUT
    )
    del message
    job = job_to_json(response.job)
    return JSONResponse(job, status_code=201,
                        headers={"Location": f"/api/v1/jobs/{job['job_id']}/status"})


def _too_large(limit: int) -> BridgeError:
    return BridgeError(413, "PAYLOAD_TOO_LARGE",
                       f"the file is larger than the server's limit of {limit} bytes")


class _Bounded:
    """`receive` that stops a body larger than `most` bytes, whatever Content-Length says.

    It fails the parse with a MultiPartException: the one error on which the form parser
    closes the files it has spooled so far."""

    def __init__(self, receive: Receive, most: int) -> None:
        self._receive = receive
        self._most = most
        self._seen = 0
        self.exceeded = False

    async def __call__(self) -> ASGIMessage:
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._most:
                self.exceeded = True
                raise MultiPartException("request body too large")
        return message


async def list_jobs(request: Request) -> Response:
    caller = authenticate(request)
    message = pb.ListJobsRequest(
        page_size=_params.int_query(request, "page_size", 0),
        page_token=request.query_params.get("page_token", ""),
    )
    response = await _stub(request).ListJobs(
        message, metadata=caller.metadata, timeout=UNARY_TIMEOUT
    )
    return JSONResponse({
        "jobs": [job_to_json(job) for job in response.jobs],
        "next_page_token": response.next_page_token or None,
    })


async def job_status(request: Request) -> Response:
    caller = authenticate(request)
    job_id = _params.job_id(request)
    response = await _stub(request).GetStatus(
        pb.GetStatusRequest(job_id=job_id), metadata=caller.metadata, timeout=UNARY_TIMEOUT
    )
    return JSONResponse(job_to_json(response.job), headers=NO_STORE)


async def cancel_job(request: Request) -> Response:
    caller = authenticate(request)
    job_id = _params.job_id(request)
    response = await _stub(request).CancelJob(
        pb.CancelJobRequest(job_id=job_id), metadata=caller.metadata, timeout=UNARY_TIMEOUT
    )
    return JSONResponse(job_to_json(response.job))


async def stream_ticket(request: Request) -> Response:
    caller = authenticate(request)
    job_id = _params.job_id(request)
    # Only for a job the caller may see: another user's job answers 404 here already.
    await _stub(request).GetStatus(
        pb.GetStatusRequest(job_id=job_id), metadata=caller.metadata, timeout=UNARY_TIMEOUT
    )
    settings: Settings = request.app.state.settings
    ttl = settings.stream_ticket_ttl_seconds
    ticket = request.app.state.tokens.mint_stream_ticket(caller.subject, job_id, ttl)
    return JSONResponse(
        {"ticket": ticket, "expires_in": ttl, "job_id": job_id,
         "stream_url": f"/api/v1/jobs/{job_id}/stream?ticket={ticket}"},
        headers=NO_STORE,
    )


async def job_stream(request: Request) -> Response:
    caller = authenticate_stream(request, _params.canonical(request.path_params["job_id"]))
    job_id = _params.job_id(request)
    after = _params.last_event_id(request)
    stub = _stub(request)
    first: pb.WatchJobResponse | None = None
    if after:
        # A resume may wait long for its next event, so check access (and whether
        # anything is left) now, while errors can still be an HTTP status.
        status = await stub.GetStatus(
            pb.GetStatusRequest(job_id=job_id), metadata=caller.metadata, timeout=UNARY_TIMEOUT
        )
        if _is_terminal(status.job) and status.job.sequence <= after:
            return _nothing_left()
    call = stub.WatchJob(
        pb.WatchJobRequest(job_id=job_id, after_sequence=after), metadata=caller.metadata
    )
    if not after:
        try:
            read = await call.read()
        except BaseException:
            call.cancel()
            raise
        if read is aio.EOF:
            return _nothing_left()
        first = read
    settings: Settings = request.app.state.settings
    return EventSourceResponse(
        _messages(call, first, job_id),
        heartbeat=settings.sse_heartbeat_seconds,
        retry_ms=settings.sse_retry_milliseconds,
        closing=request.app.state.closing,
        on_close=call.cancel,
    )


def _nothing_left() -> Response:
    # 204 tells EventSource to stop reconnecting: the job has ended, all of it was sent.
    return Response(status_code=204, headers=NO_STORE)


def _is_terminal(job: pb.Job) -> bool:
    return job.status in (pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED,
                          pb.JOB_STATUS_CANCELLED)


async def _messages(
    call: Any, first: pb.WatchJobResponse | None, job_id: str
) -> AsyncIterator[Message]:
    try:
        update = first
        while True:
            if update is None:
                read = await call.read()
                if read is aio.EOF:
                    return
                update = read
            data = job_to_json(update.job)
            yield Message(id=update.sequence, data=data)
            if data["status"] in TERMINAL_STATUSES:
                return
            update = None
    except grpc.RpcError as error:
        # Headers are gone; end the stream and let EventSource resume from its last id.
        log.warning("watch of job %s ended: %s", job_id, error.code())
    finally:
        call.cancel()


ROUTES = [
    Route("/api/v1/jobs", submit_job, methods=["POST"]),
    Route("/api/v1/jobs", list_jobs, methods=["GET"]),
    Route("/api/v1/jobs/{job_id}/status", job_status, methods=["GET"]),
    Route("/api/v1/jobs/{job_id}/stream", job_stream, methods=["GET"]),
    Route("/api/v1/jobs/{job_id}/stream-ticket", stream_ticket, methods=["POST"]),
    Route("/api/v1/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
]
