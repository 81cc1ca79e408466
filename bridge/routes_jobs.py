"""The job endpoints: submit, list, status, cancel, and the live stream."""

from __future__ import annotations

import logging
from typing import Any

from octavia.jobjson import job_to_json
from octavia.v1 import jobs_pb2 as pb
from python_multipart.exceptions import FormParserError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message as ASGIMessage
from starlette.types import Receive

from server.limits import StreamQuota
from server.settings import Settings

from . import _params, routes_review
from ._fanout import Feeds
from ._status_cache import StatusCache
from .auth import authenticate, authenticate_stream
from .convert import MIX_MODES
from .errors import BridgeError
from .sse import EventSourceResponse

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
    form = await _read_form(request, limit)
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
            options=pb.JobOptions(
                mix_mode=MIX_MODES.get(mix_mode, 0),  # type: ignore[arg-type]
                pause_after=routes_review.pause_after(form),
                webhook_url=fields.get("webhook_url", ""),
            ),
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


async def _read_form(request: Request, limit: int) -> FormData:
    """The multipart form, its file spooled to disk (python-multipart); reading it once
    later is the only copy of the media held in memory. Whatever stops the parse (a
    body over the limit, malformed framing, a client gone mid-upload), the files spooled
    so far are closed and the answer is a 4xx."""
    receive = _Bounded(request.receive, limit + FORM_OVERHEAD)
    parser = MultiPartParser(request.headers, Request(request.scope, receive).stream(),
                             max_files=1, max_fields=16)
    spooled = getattr(parser, "_files_to_close_on_error", [])  # Starlette's own list
    try:
        form = await parser.parse()
    except BaseException as error:
        for file in spooled:
            file.close()
        if receive.exceeded:
            raise _too_large(limit) from None
        if isinstance(error, MultiPartException | FormParserError):
            raise BridgeError(400, "INVALID_ARGUMENT",
                              f"malformed multipart/form-data body: {error}") from None
        if isinstance(error, ClientDisconnect):
            raise BridgeError(400, "INVALID_ARGUMENT",
                              "the request body ended before its end") from None
        raise
    # A body cut short inside the file part parses without error, and without that part.
    kept = {id(value.file) for value in form.values() if isinstance(value, UploadFile)}
    for file in spooled:
        if id(file) not in kept:
            file.close()
    return form


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

    async def ask_server() -> dict[str, Any]:
        response = await _stub(request).GetStatus(
            pb.GetStatusRequest(job_id=job_id), metadata=caller.metadata, timeout=UNARY_TIMEOUT
        )
        return job_to_json(response.job)

    statuses: StatusCache = request.app.state.statuses
    body = await statuses.get((job_id, caller.subject), ask_server)
    return Response(body, media_type="application/json", headers=NO_STORE)


async def cancel_job(request: Request) -> Response:
    caller = authenticate(request)
    job_id = _params.job_id(request)
    response = await _stub(request).CancelJob(
        pb.CancelJobRequest(job_id=job_id), metadata=caller.metadata, timeout=UNARY_TIMEOUT
    )
    request.app.state.statuses.saw((job_id, caller.subject), response.job.sequence)
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
    feeds: Feeds = request.app.state.feeds
    # The user's browsers share one upstream WatchJob per job, so the server's stream
    # quota cannot see them: the bridge counts its SSE responses per user itself.
    streams: StreamQuota = request.app.state.sse_streams
    streams.acquire(caller.subject)
    try:
        # Joins this process's feed of the job (one WatchJob shared by all of the user's
        # browsers); access errors are raised here, while they can still be an HTTP status.
        joined = await feeds.watch(job_id, caller, after)
    except BaseException:
        streams.release(caller.subject)
        raise
    if joined is None:
        streams.release(caller.subject)
        # 204 tells EventSource to stop reconnecting: the job has ended, all of it was sent.
        return Response(status_code=204, headers=NO_STORE)
    feed, watcher = joined
    settings: Settings = request.app.state.settings

    def close() -> None:
        streams.release(caller.subject)
        feeds.release(feed, watcher)

    return EventSourceResponse(
        watcher,
        retry_ms=settings.sse_retry_milliseconds,
        on_close=close,
    )


ROUTES = [
    Route("/api/v1/jobs", submit_job, methods=["POST"]),
    Route("/api/v1/jobs", list_jobs, methods=["GET"]),
    Route("/api/v1/jobs/{job_id}/status", job_status, methods=["GET"]),
    Route("/api/v1/jobs/{job_id}/stream", job_stream, methods=["GET"]),
    Route("/api/v1/jobs/{job_id}/stream-ticket", stream_ticket, methods=["POST"]),
    Route("/api/v1/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
]
