"""Protobuf `Job` → the JSON object of the HTTP API and of webhook bodies. The bridge's
status endpoint, every SSE message and every webhook use `job_to_json`, so polling,
streaming and callbacks always agree; a gRPC client can use it to print the same object.

Enums become lowercase names without their prefix (`JOB_PHASE_TRANSCRIBING` →
`"transcribing"`), timestamps ISO-8601 UTC (`2025-01-02T03:04:05.678Z`), and anything
unset is `null`.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from urllib.parse import quote

from google.protobuf.timestamp_pb2 import Timestamp

from octavia.v1 import jobs_pb2 as pb


def enum_name(enum_type: Any, prefix: str, value: int) -> str | None:
    """`JOB_PHASE_TRANSCRIBING` → `"transcribing"`; the unspecified 0 → None."""
    if value == 0:
        return None
    name: str = enum_type.Name(value)
    return name.removeprefix(prefix).lower()


def iso_timestamp(message: Any, field: str) -> str | None:
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    moment = stamp.ToDatetime(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: str) -> str | None:
    return value or None


def artifact_url(job_id: str, name: str) -> str:
    return f"/api/v1/jobs/{job_id}/artifacts/{quote(name)}"


def job_to_json(job: pb.Job) -> dict[str, Any]:
    error = None
    if job.HasField("error"):
        error = {
            "reason": job.error.reason,
            "retryable": job.error.retryable,
            "phase": enum_name(pb.JobPhase, "JOB_PHASE_", job.error.phase),
        }
    return {
        "job_id": job.job_id,
        "status": enum_name(pb.JobStatus, "JOB_STATUS_", job.status),
        "phase": enum_name(pb.JobPhase, "JOB_PHASE_", job.phase),
        "progress_percentage": job.progress_percentage,
        "current_step": _text(job.current_step),
        "created_at": iso_timestamp(job, "created_at"),
        "started_at": iso_timestamp(job, "started_at"),
        "completed_at": iso_timestamp(job, "completed_at"),
        "error_message": _text(job.error_message),
        "error": error,
        "output_file": _text(job.output_file),
        "output_url": artifact_url(job.job_id, job.output_file) if job.output_file else None,
        "source_language": _text(job.source_language),
        "target_language": _text(job.target_language),
        "queue_position": job.queue_position,
        "eta_seconds": job.eta_seconds if job.HasField("eta_seconds") else None,
        "media_duration_seconds": (
            job.media_duration_seconds if job.HasField("media_duration_seconds") else None
        ),
        "source_filename": _text(job.source_filename),
        "request_id": _text(job.request_id),
        "mix_mode": enum_name(pb.MixMode, "MIX_MODE_", job.options.mix_mode),
        "pause_after": [enum_name(pb.JobPhase, "JOB_PHASE_", p) for p in job.options.pause_after],
        "version": job.version or 1,
        "artifacts": [
            {
                "name": artifact.name,
                "media_type": artifact.media_type,
                "size_bytes": artifact.size_bytes,
                "sha256": artifact.sha256,
                "url": artifact_url(job.job_id, artifact.name),
            }
            for artifact in job.artifacts
        ],
        "sequence": job.sequence,
    }


TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
