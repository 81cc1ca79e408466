"""Between the store's job snapshots and the protobuf messages on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from octavia.v1 import jobs_pb2 as pb

from .jobs import MixMode, Phase
from .store import JobEvent

_MIX_TO_PB = {
    MixMode.DUCKED: pb.MIX_MODE_DUCKED,
    MixMode.DUB_ONLY: pb.MIX_MODE_DUB_ONLY,
    MixMode.SEPARATED: pb.MIX_MODE_SEPARATED,
}
MIX_FROM_PB = {value: key for key, value in _MIX_TO_PB.items()}


def phase_to_proto(phase: str) -> Any:
    """The JobPhase value of a domain phase."""
    return _enum(pb.JobPhase, "JOB_PHASE", phase)


def phase_from_proto(value: int) -> Phase | None:
    """The domain phase of a JobPhase value, None for UNSPECIFIED or unknown values."""
    if not value or value not in pb.JobPhase.values():
        return None
    return Phase(pb.JobPhase.Name(value).removeprefix("JOB_PHASE_").lower())


def timestamp(value: str | None) -> Timestamp | None:
    """A protobuf Timestamp from a stored ISO-8601 string."""
    return _timestamp(value)


def artifact_to_proto(artifact: dict[str, Any]) -> pb.Artifact:
    return pb.Artifact(**{k: artifact[k] for k in ("name", "media_type", "size_bytes", "sha256")})



def _enum(enum_type: Any, prefix: str, value: str | None) -> int:
    if not value:
        return 0
    return int(enum_type.Value(f"{prefix}_{value.upper()}"))


def _timestamp(value: str | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(value))
    return stamp


def job_to_proto(snapshot: dict[str, Any]) -> pb.Job:
    job = pb.Job(
        job_id=snapshot["job_id"],
        status=_enum(pb.JobStatus, "JOB_STATUS", snapshot["status"]),  # type: ignore[arg-type]
        phase=_enum(pb.JobPhase, "JOB_PHASE", snapshot["phase"]),  # type: ignore[arg-type]
        progress_percentage=snapshot["progress_percentage"],
        current_step=snapshot["current_step"] or "",
        error_message=snapshot["error_message"] or "",
        output_file=snapshot["output_file"] or "",
        source_language=snapshot["source_language"] or "",
        target_language=snapshot["target_language"],
        queue_position=snapshot["queue_position"],
        request_id=snapshot["request_id"] or "",
        source_filename=snapshot["source_filename"] or "",
        sequence=snapshot["sequence"],
        options=pb.JobOptions(
            mix_mode=_MIX_TO_PB[MixMode(snapshot["mix_mode"])],
            pause_after=[phase_to_proto(p) for p in snapshot.get("pause_after") or []],
            webhook_url=snapshot.get("webhook_url") or "",
        ),
        artifacts=[artifact_to_proto(artifact) for artifact in snapshot["artifacts"]],
        version=snapshot.get("version") or 1,
    )
    for field in ("created_at", "started_at", "completed_at"):
        stamp = _timestamp(snapshot[field])
        if stamp is not None:
            getattr(job, field).CopyFrom(stamp)
    if snapshot["eta_seconds"] is not None:
        job.eta_seconds = snapshot["eta_seconds"]
    if snapshot["media_duration_seconds"] is not None:
        job.media_duration_seconds = snapshot["media_duration_seconds"]
    if snapshot["error_reason"]:
        job.error.CopyFrom(
            pb.JobError(
                reason=snapshot["error_reason"],
                retryable=snapshot["error_retryable"],
                phase=_enum(pb.JobPhase, "JOB_PHASE", snapshot["error_phase"]),  # type: ignore[arg-type]
            )
        )
    return job


def event_to_proto(event: JobEvent) -> pb.WatchJobResponse:
    return pb.WatchJobResponse(
        sequence=event.sequence,
        event_type=_enum(pb.EventType, "EVENT_TYPE", event.type),  # type: ignore[arg-type]
        job=job_to_proto(event.snapshot),
    )


def snapshot_to_watch(snapshot: dict[str, Any]) -> pb.WatchJobResponse:
    """The first message of a fresh stream: the snapshot itself, not a change."""
    return pb.WatchJobResponse(
        sequence=snapshot["sequence"],
        event_type=pb.EVENT_TYPE_UNSPECIFIED,
        job=job_to_proto(snapshot),
    )
