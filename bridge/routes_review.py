"""Review endpoints: read and edit a job's segments, resume or re-dub it, list its
versions and its webhook deliveries."""

from __future__ import annotations

import json
import math
from typing import Any

import grpc
from octavia.jobjson import artifact_url, enum_name, iso_timestamp, job_to_json
from octavia.v1 import jobs_pb2 as pb
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import _params
from .auth import authenticate
from .convert import PAUSE_PHASES
from .errors import BridgeError

UNARY_TIMEOUT = 60.0
MAX_BODY = 1024 * 1024
"""Largest PATCH body: room for thousands of edited lines."""
NO_STORE = {"Cache-Control": "no-store"}

_TEXT_FIELDS = ("source_text", "target_text")
_TIME_FIELDS = ("start_seconds", "end_seconds")


def pause_after(form: FormData) -> list[pb.JobPhase]:
    """`pause_after` of the submit form: repeated fields and/or comma-separated phases."""
    phases: list[pb.JobPhase] = []
    for value in form.getlist("pause_after"):
        if not isinstance(value, str):
            raise BridgeError(400, "INVALID_ARGUMENT", "pause_after must be text")
        for name in filter(None, (part.strip().lower() for part in value.split(","))):
            if name not in PAUSE_PHASES:
                raise BridgeError(400, "INVALID_ARGUMENT",
                                  f"pause_after must name {' and/or '.join(PAUSE_PHASES)}, "
                                  f"not {name[:32]!r}")
            if PAUSE_PHASES[name] not in phases:
                phases.append(PAUSE_PHASES[name])
    return phases


async def list_segments(request: Request) -> Response:
    caller = authenticate(request)
    job_id = _params.job_id(request)
    response = await request.app.state.jobs.ListSegments(
        pb.ListSegmentsRequest(job_id=job_id), metadata=caller.metadata, timeout=UNARY_TIMEOUT)
    return JSONResponse({
        "job_id": job_id,
        "source_language": response.source_language or None,
        "target_language": response.target_language or None,
        "editable": response.editable,
        "segments": [_segment(s) for s in response.segments],
    }, headers=NO_STORE)


async def update_segments(request: Request) -> Response:
    caller = authenticate(request)
    job_id = _params.job_id(request)
    edits = _edits(await _json_body(request))
    response = await request.app.state.jobs.UpdateSegments(
        pb.UpdateSegmentsRequest(job_id=job_id, edits=edits), metadata=caller.metadata,
        timeout=UNARY_TIMEOUT)
    return JSONResponse({"job_id": job_id,
                         "segments": [_segment(s) for s in response.segments]},
                        headers=NO_STORE)


async def resume_job(request: Request) -> Response:
    caller = authenticate(request)
    job_id = _params.job_id(request)
    response = await request.app.state.jobs.ResumeJob(
        pb.ResumeJobRequest(job_id=job_id), metadata=caller.metadata, timeout=UNARY_TIMEOUT)
    request.app.state.statuses.saw((job_id, caller.subject), response.job.sequence)
    return JSONResponse(job_to_json(response.job), headers=NO_STORE)


async def list_versions(request: Request) -> Response:
    caller = authenticate(request)
    job_id = _params.job_id(request)
    response = await request.app.state.jobs.ListVersions(
        pb.ListVersionsRequest(job_id=job_id), metadata=caller.metadata, timeout=UNARY_TIMEOUT)
    return JSONResponse({"job_id": job_id,
                         "versions": [_version(job_id, v) for v in response.versions]},
                        headers=NO_STORE)


async def list_webhooks(request: Request) -> Response:
    caller = authenticate(request)
    job_id = _params.job_id(request)
    try:
        response = await request.app.state.jobs.ListWebhookDeliveries(
            pb.ListWebhookDeliveriesRequest(job_id=job_id), metadata=caller.metadata,
            timeout=UNARY_TIMEOUT)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise BridgeError(501, "UNIMPLEMENTED",
                              "the server this bridge talks to keeps no webhook deliveries"
                              ) from None
        raise
    return JSONResponse({"job_id": job_id,
                         "deliveries": [_delivery(d) for d in response.deliveries]},
                        headers=NO_STORE)


# --- JSON in and out ---------------------------------------------------------------------


def _segment(segment: pb.Segment) -> dict[str, Any]:
    return {
        "index": segment.index,
        "start_seconds": segment.start_seconds,
        "end_seconds": segment.end_seconds,
        "speaker": segment.speaker or None,
        "source_text": segment.source_text,
        "target_text": segment.target_text,
    }


def _version(job_id: str, version: pb.JobVersion) -> dict[str, Any]:
    def url(name: str) -> str:
        return f"{artifact_url(job_id, name)}?version={version.version}"

    return {
        "version": version.version,
        "completed_at": iso_timestamp(version, "completed_at"),
        "output_file": version.output_file or None,
        "output_url": url(version.output_file) if version.output_file else None,
        "artifacts": [
            {"name": a.name, "media_type": a.media_type, "size_bytes": a.size_bytes,
             "sha256": a.sha256, "url": url(a.name)}
            for a in version.artifacts
        ],
    }


def _delivery(delivery: pb.WebhookDelivery) -> dict[str, Any]:
    return {
        "delivery_id": delivery.delivery_id,
        "event_type": enum_name(pb.EventType, "EVENT_TYPE_", delivery.event_type),
        "sequence": delivery.sequence,
        "url": delivery.url,
        "state": enum_name(pb.WebhookDeliveryState, "WEBHOOK_DELIVERY_STATE_", delivery.state),
        "attempts": [{"at": iso_timestamp(a, "at"), "status_code": a.status_code or None,
                      "error": a.error or None} for a in delivery.attempts],
        "next_attempt_at": iso_timestamp(delivery, "next_attempt_at"),
    }


async def _json_body(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _too_large()
    try:
        return json.loads(body)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError both
        raise BridgeError(400, "INVALID_ARGUMENT", f"the body is not JSON: {error}") from None


def _too_large() -> BridgeError:
    return BridgeError(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {MAX_BODY} bytes")


def _shape(message: str) -> BridgeError:
    """JSON, but not the shape of the request: 422 names what is wrong."""
    return BridgeError(422, "INVALID_ARGUMENT", message)


def _edits(body: Any) -> list[pb.SegmentEdit]:
    """`{"edits": [{"index": 0, "target_text": "…", …}]}` as SegmentEdits; null or an
    absent field leaves that part of the segment as it is."""
    if not isinstance(body, dict) or not isinstance(body.get("edits"), list):
        raise _shape('send {"edits": [{"index": 0, "target_text": "..."}, ...]}')
    if unknown := set(body) - {"edits"}:
        raise _shape(f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    edits = []
    for position, raw in enumerate(body["edits"]):
        where = f"edits[{position}]"
        if not isinstance(raw, dict):
            raise _shape(f"{where} must be an object")
        if unknown := set(raw) - {"index", *_TEXT_FIELDS, *_TIME_FIELDS}:
            raise _shape(f"{where} has unknown field(s): {', '.join(sorted(unknown))[:200]}")
        index = raw.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not (
                0 <= index <= _params.INT32_MAX):
            raise _shape(f"{where}.index must be a segment index (an integer from 0)")
        edit = pb.SegmentEdit(index=index)
        for name in _TEXT_FIELDS:
            value = raw.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise _shape(f"{where}.{name} must be a string")
            setattr(edit, name, value)
        for name in _TIME_FIELDS:
            value = raw.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value)):
                raise _shape(f"{where}.{name} must be a number of seconds")
            setattr(edit, name, float(value))
        if not any(edit.HasField(name) for name in (*_TEXT_FIELDS, *_TIME_FIELDS)):
            raise _shape(f"{where} changes nothing: give source_text, target_text, "
                         "start_seconds or end_seconds")
        edits.append(edit)
    if not edits:
        raise _shape("edits is empty: give at least one segment edit")
    return edits


ROUTES = [
    Route("/api/v1/jobs/{job_id}/segments", list_segments, methods=["GET"]),
    Route("/api/v1/jobs/{job_id}/segments", update_segments, methods=["PATCH"]),
    Route("/api/v1/jobs/{job_id}/resume", resume_job, methods=["POST"]),
    Route("/api/v1/jobs/{job_id}/versions", list_versions, methods=["GET"]),
    Route("/api/v1/jobs/{job_id}/webhooks", list_webhooks, methods=["GET"]),
]
