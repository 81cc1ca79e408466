"""How jobs look: rich tables for people, one JSON document per line for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..v1 import jobs_pb2 as pb


def as_dict(message: Message) -> dict[str, Any]:
    """The message as JSON-ready data: proto field names, enum names, zero values kept."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(console: Console, data: Any) -> None:
    console.out(json.dumps(data, separators=(",", ":")), highlight=False)


def status_name(job: pb.Job) -> str:
    return pb.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower()


def phase_name(phase: pb.JobPhase) -> str:
    return pb.JobPhase.Name(phase).removeprefix("JOB_PHASE_").lower()


def event_name(update: pb.WatchJobResponse) -> str:
    if update.event_type == pb.EVENT_TYPE_UNSPECIFIED:
        return "snapshot"
    return pb.EventType.Name(update.event_type).removeprefix("EVENT_TYPE_").lower()


def job_table(job: pb.Job) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("job", job.job_id),
        ("status", status_name(job)),
        ("phase", phase_name(job.phase)),
        ("progress", f"{job.progress_percentage:.1f}%"),
        ("step", job.current_step),
        ("languages", f"{job.source_language or '?'} → {job.target_language}"),
        ("file", job.source_filename),
        ("submitted", _time(job, "created_at")),
        ("started", _time(job, "started_at")),
        ("finished", _time(job, "completed_at")),
    ]
    if job.version > 1:
        rows.append(("version", str(job.version)))
    if job.options.pause_after:
        rows.append(("pauses after", ", ".join(phase_name(p) for p in job.options.pause_after)))
    if job.options.webhook_url:
        rows.append(("webhook", job.options.webhook_url))
    if job.status == pb.JOB_STATUS_PENDING:
        rows.append(("queue position", str(job.queue_position)))
    if job.HasField("eta_seconds"):
        rows.append(("eta", f"{job.eta_seconds:.0f} s"))
    if job.error_message:
        rows.append(("error", f"{job.error_message} [{job.error.reason}]"))
    for artifact in job.artifacts:
        rows.append(("artifact", f"{artifact.name}  {_size(artifact.size_bytes)}  "
                                 f"{artifact.media_type}  sha256 {artifact.sha256[:16]}…"))
    for key, value in rows:
        if value:
            table.add_row(key, value)
    return table


def jobs_table(jobs: list[pb.Job]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("job", no_wrap=True, min_width=36)
    for column in ("status", "phase", "progress", "to", "file", "submitted"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        table.add_row(
            job.job_id, status_name(job), phase_name(job.phase),
            f"{job.progress_percentage:.0f}%", job.target_language, job.source_filename,
            _time(job, "created_at"),
        )
    return table


DASH = "\u2013"  # an en dash, for time ranges


def segments_table(segments: Iterable[pb.Segment]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column(f"start{DASH}end", no_wrap=True)
    table.add_column("source", overflow="fold", ratio=1)
    table.add_column("target", overflow="fold", ratio=1)
    for segment in segments:
        table.add_row(
            str(segment.index),
            f"{clock(segment.start_seconds)}{DASH}{clock(segment.end_seconds)}",
            Text(segment.source_text),
            Text(segment.target_text) if segment.target_text
            else Text("not translated yet", style="dim"),
        )
    return table


def versions_table(versions: Iterable[pb.JobVersion]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("version", justify="right", no_wrap=True)
    for column in ("completed", "output", "artifacts"):
        table.add_column(column, overflow="fold")
    for version in versions:
        completed = (version.completed_at.ToDatetime().isoformat(sep=" ", timespec="seconds")
                     if version.HasField("completed_at") else "")
        artifacts = ", ".join(f"{a.name} ({_size(a.size_bytes)})" for a in version.artifacts)
        table.add_row(str(version.version), completed, version.output_file, artifacts)
    return table


def review_hint(job: pb.Job, *, flags: str = "", local: bool = False) -> str:
    """What a person does with a job that awaits review: the commands, with `flags`."""
    what = "transcript" if job.phase == pb.JOB_PHASE_TRANSCRIBING else "translation"
    lines = [f"job {job.job_id} awaits review of the {what}: read and edit its lines, "
             "then resume it"]
    if local:
        lines[0] += " (it is kept in the data directory; start `octavia serve` first)"
    lines += [
        f"  octavia segments {job.job_id}{flags}",
        f"  octavia edit {job.job_id} INDEX --target TEXT{flags}",
        f"  octavia resume {job.job_id}{flags}",
    ]
    return "\n".join(lines)


def clock(seconds: float) -> str:
    """0:03.25, 12:07.00, 1:02:03.50: media time, to the hundredth."""
    minutes, rest = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return (f"{hours}:{minutes:02d}:{rest:05.2f}" if hours else f"{minutes}:{rest:05.2f}")


def update_line(update: pb.WatchJobResponse) -> str:
    job = update.job
    line = (f"{update.sequence:>4}  {event_name(update):<13} {phase_name(job.phase):<12} "
            f"{job.progress_percentage:5.1f}%  {job.current_step}")
    if job.error_message:
        line += f"  error: {job.error_message}"
    return line.rstrip()


def _time(job: pb.Job, field: str) -> str:
    if not job.HasField(field):
        return ""
    stamp = getattr(job, field).ToDatetime()
    return str(stamp.isoformat(sep=" ", timespec="seconds"))


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
