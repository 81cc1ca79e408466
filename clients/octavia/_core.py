"""What the sync and async clients share: channel options, retries, requests, watch and
download bookkeeping. Nothing here does I/O on the network, so both clients stay thin."""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import grpc

from .errors import ChecksumMismatch, FailedPrecondition, InvalidArgument, NotFound, Reason
from .v1 import jobs_pb2 as pb

MiB = 1024 * 1024

DEFAULT_MAX_MESSAGE_BYTES = 300 * MiB
"""Room for the server's default upload limit (256 MiB) plus the rest of the request."""

DEFAULT_TIMEOUT = 30.0
"""Seconds each attempt of a unary call may take; uploads get `UPLOAD_TIMEOUT`."""

UPLOAD_TIMEOUT = 600.0

RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
"""Codes after which an idempotent call is simply tried again: nothing reached a handler,
or the connection dropped under it."""

TERMINAL_STATUSES = frozenset(
    {pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELLED}
)

Source = str | os.PathLike[str] | bytes
"""What `submit` accepts: a path to a media file, or its bytes."""

PhaseLike = pb.JobPhase | str
"""A phase as the enum value or its name: `pb.JOB_PHASE_TRANSLATING` or "translating"."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, for idempotent calls and watch reconnects."""

    attempts: int = 6
    """Tries in all, the first included; a watch gets this many per outage."""
    initial_backoff: float = 0.1
    max_backoff: float = 3.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        """The pause before each retry: `attempts - 1` of them."""
        ceiling = self.initial_backoff
        for _ in range(self.attempts - 1):
            yield random.uniform(ceiling / 2, ceiling)
            ceiling = min(ceiling * self.multiplier, self.max_backoff)


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        # Reconnect quickly after a dropped connection; our own backoff paces the calls.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 3000),
    ]


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def is_retryable(error: grpc.RpcError) -> bool:
    return error.code() in RETRYABLE_CODES


def read_source(source: Source) -> tuple[bytes, str]:
    """The media bytes and the file name to send with them."""
    if isinstance(source, bytes):
        return source, ""
    path = Path(source)
    return path.read_bytes(), path.name


def submit_request(
    content: bytes,
    filename: str,
    target_language: str,
    source_language: str | None,
    request_id: str | None,
    mix_mode: pb.MixMode,
    pause_after: Iterable[PhaseLike] = (),
    webhook_url: str | None = None,
) -> pb.SubmitJobRequest:
    # A request id makes SubmitJob idempotent, so a retry after a dropped connection
    # returns the job the first attempt created instead of a second one.
    return pb.SubmitJobRequest(
        content=content,
        filename=filename,
        target_language=target_language,
        source_language=source_language or "",
        request_id=request_id or str(uuid.uuid4()),
        options=pb.JobOptions(
            mix_mode=mix_mode,
            pause_after=[phase_value(phase) for phase in pause_after],
            webhook_url=webhook_url or "",
        ),
    )


def phase_value(phase: PhaseLike) -> pb.JobPhase:
    """`phase` as the enum value; a name is looked up ("translating" or "JOB_PHASE_…")."""
    if not isinstance(phase, str):
        return phase
    name = phase.strip().upper()
    try:
        value = pb.JobPhase.Value(name if name.startswith("JOB_PHASE_") else f"JOB_PHASE_{name}")
    except ValueError:
        raise InvalidArgument(f"unknown phase {phase!r}: use transcribing or translating") from None
    return cast(pb.JobPhase, value)


@dataclass(frozen=True)
class SegmentEdit:
    """A change to one segment for `update_segments`; None leaves a field as it is.

    A new `source_text` is translated again on resume (unless `target_text` is given too);
    a new `target_text` is spoken again; timings are in seconds of the source media.
    """

    index: int
    source_text: str | None = None
    target_text: str | None = None
    start: float | None = None
    end: float | None = None

    def to_proto(self) -> pb.SegmentEdit:
        edit = pb.SegmentEdit(index=self.index)
        if self.source_text is not None:
            edit.source_text = self.source_text
        if self.target_text is not None:
            edit.target_text = self.target_text
        if self.start is not None:
            edit.start_seconds = self.start
        if self.end is not None:
            edit.end_seconds = self.end
        return edit


def update_segments_request(
    job_id: str, edits: SegmentEdit | pb.SegmentEdit | Iterable[SegmentEdit | pb.SegmentEdit]
) -> pb.UpdateSegmentsRequest:
    if isinstance(edits, SegmentEdit | pb.SegmentEdit):
        edits = [edits]
    return pb.UpdateSegmentsRequest(
        job_id=job_id,
        edits=[e.to_proto() if isinstance(e, SegmentEdit) else e for e in edits],
    )


class WatchCursor:
    """Where a watch is, so a reconnect resumes right after the last update delivered."""

    def __init__(self, after_sequence: int = 0, stop_at_review: bool = False) -> None:
        self.last = after_sequence
        self.done = False
        self.paused = False
        """The update just delivered says the job awaits review (and the watch may stop)."""
        self._stop_at_review = stop_at_review

    def accept(self, message: pb.WatchJobResponse) -> bool:
        """Whether to deliver `message`; anything already delivered is dropped."""
        if self.last and message.sequence <= self.last:
            return False
        self.last = message.sequence
        self.done = message.job.status in TERMINAL_STATUSES
        self.paused = (self._stop_at_review
                       and message.job.status == pb.JOB_STATUS_AWAITING_REVIEW)
        return True

    def still_paused(self, current: pb.Job) -> bool:
        """Whether the pause just delivered is where the job is now; a replayed pause the
        job has moved on from is not (the watch then goes on to the later updates)."""
        return current.status == pb.JOB_STATUS_AWAITING_REVIEW and current.sequence <= self.last

    def request(self, job_id: str) -> pb.WatchJobRequest:
        return pb.WatchJobRequest(job_id=job_id, after_sequence=self.last)


def find_artifact(job: pb.Job, name: str) -> pb.Artifact:
    """The listed artifact `name`: what a download must match."""
    for artifact in job.artifacts:
        if artifact.name == name:
            return artifact
    if job.status != pb.JOB_STATUS_COMPLETED:
        status = pb.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower()
        raise FailedPrecondition(
            f"job {job.job_id} is {status}; artifacts exist once it has completed",
            reason=Reason.JOB_NOT_FINISHED,
            retryable=job.status in (pb.JOB_STATUS_PENDING, pb.JOB_STATUS_PROCESSING),
        )
    raise NotFound(f"job {job.job_id} has no artifact {name!r}", reason=Reason.ARTIFACT_NOT_FOUND)


def version_listing(job_id: str, versions: Sequence[pb.JobVersion], version: int) -> pb.Job:
    """The job as its finished `version` left it: what a download of that version must
    match (the shape `find_artifact` reads)."""
    for entry in versions:
        if entry.version == version:
            return pb.Job(job_id=job_id, status=pb.JOB_STATUS_COMPLETED, version=version,
                          output_file=entry.output_file, artifacts=entry.artifacts)
    listed = ", ".join(str(v.version) for v in versions) or "none yet"
    raise NotFound(f"job {job_id} has no version {version} (finished versions: {listed})",
                   reason=Reason.ARTIFACT_NOT_FOUND)


def download_path(dest: str | os.PathLike[str], name: str) -> Path:
    """`dest/name` when `dest` is a folder (or ends with a separator), else `dest`."""
    path = Path(dest)
    if path.is_dir() or str(dest).endswith(("/", os.sep)):
        return path / name
    return path


class ArtifactSink:
    """Writes an artifact to `<path>.part`, hashing as it goes, and moves it into place only
    when size and sha256 match the job's listing. Resumable: `offset` is where to ask next.
    `version` pins the outputs read to the version the listing came from (0: current)."""

    def __init__(self, path: Path, artifact: pb.Artifact, version: int = 0) -> None:
        self.path = path
        self.artifact = artifact
        self.version = version
        self.partial = path.with_name(path.name + ".part")
        self.offset = 0
        self._hash = hashlib.sha256()
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.partial.open("wb")

    @property
    def complete(self) -> bool:
        return self.offset >= self.artifact.size_bytes

    def request(self, job_id: str) -> pb.ReadArtifactRequest:
        return pb.ReadArtifactRequest(job_id=job_id, name=self.artifact.name,
                                      offset=self.offset, version=self.version)

    def write(self, chunk: pb.ReadArtifactResponse) -> None:
        assert self._file is not None
        if chunk.offset != self.offset:
            raise ChecksumMismatch(
                f"{self.artifact.name}: chunk at offset {chunk.offset}, expected {self.offset}"
            )
        self._file.write(chunk.data)
        self._hash.update(chunk.data)
        self.offset += len(chunk.data)

    def finish(self) -> Path:
        """Verify and move into place; on a mismatch, remove the partial file and raise."""
        self.close()
        digest = self._hash.hexdigest()
        if self.offset != self.artifact.size_bytes or digest != self.artifact.sha256:
            self.partial.unlink(missing_ok=True)
            raise ChecksumMismatch(
                f"{self.artifact.name}: got {self.offset} bytes with sha256 {digest}, "
                f"the job lists {self.artifact.size_bytes} bytes with sha256 "
                f"{self.artifact.sha256}"
            )
        self.partial.replace(self.path)
        return self.path

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        self.close()
        self.partial.unlink(missing_ok=True)
