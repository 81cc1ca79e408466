"""What the job runner asks of an engine, and what an engine may tell it.

An engine runs one job synchronously in a worker thread. It reports through the
`JobContext` it is handed: which phase it entered, how far it is within that phase,
and it calls `check_cancelled()` between units of work (segments, batches) so a
cancel takes effect within about a second. It raises `EngineError` with a reason
a program can act on when the job cannot be done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from octavia.errors import Reason

from ..jobs import Phase


@dataclass(frozen=True)
class JobSpec:
    """What to dub: everything an engine needs to know about one job."""

    job_id: str
    media_path: Path
    """The source media on local disk (an upload copy or the allowed URI)."""
    filename: str
    target_language: str
    source_language: str | None
    """None means detect it."""
    mix_mode: str = "ducked"
    """One of `ducked`, `dub_only`, `separated`."""
    workdir: Path = field(default_factory=Path)
    """A private scratch folder for this job, removed after it."""
    pause_after: frozenset[Phase] = frozenset()
    """Phases (TRANSCRIBING, TRANSLATING) after which to stop for review by raising
    `JobPaused`, once that phase's output is saved as checkpoints. An engine that cannot
    pause ignores it."""


@dataclass(frozen=True)
class ArtifactInfo:
    """One stored result file."""

    name: str
    media_type: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class JobResult:
    """What a finished job produced."""

    artifacts: list[ArtifactInfo]
    output_file: str
    """Name of the primary artifact (one of `artifacts`)."""


class JobCancelled(Exception):
    """Raised by `JobContext.check_cancelled` once the job has been cancelled."""


class JobPaused(Exception):
    """Raised by an engine after `phase` (one of `JobSpec.pause_after`) for review; the job
    runs again when resumed and reuses its checkpoints."""

    def __init__(self, phase: Phase) -> None:
        super().__init__(f"paused for review after {phase.value}")
        self.phase = phase


class EngineError(Exception):
    """The job cannot be done; the message is shown to the user as `error_message`."""

    def __init__(self, message: str, *, reason: str = Reason.STAGE_FAILED,
                 retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.retryable = retryable


class JobContext(Protocol):
    """The engine's line back to the runner. Thread-safe; every call may raise JobCancelled."""

    def enter(self, phase: Phase, step: str) -> None:
        """Start a phase (TRANSCRIBING, TRANSLATING, SYNTHESIZING, UPLOADING)."""

    def progress(self, fraction: float, step: str) -> None:
        """Progress within the current phase, 0.0 to 1.0, with a human step text."""

    def update(self, *, source_language: str | None = None,
               media_duration_seconds: float | None = None,
               eta_seconds: float | None = None) -> None:
        """Facts learnt along the way (detected language, media duration, ETA)."""

    def check_cancelled(self) -> None:
        """Raise JobCancelled if the job was cancelled."""

    def artifact_writer(self) -> ArtifactWriter:
        """Where this job's results go."""

    def checkpoints(self) -> Checkpoints:
        """Durable scratch space that outlives the process running the job."""


class Checkpoints(Protocol):
    """Stage outputs kept in the artifact store, so a job run again (its worker died) or
    re-dubbed resumes from its last completed stage instead of starting over. Never shown
    to clients; removed when the job fails or is cancelled."""

    def load(self, name: str) -> bytes | None:
        """The checkpoint saved under `name`, or None."""

    def save(self, name: str, data: bytes) -> None:
        """Save (atomically replace) the checkpoint `name`."""


class ArtifactWriter(Protocol):
    """Stores the artifacts of one job; nothing is visible to clients until the job completes."""

    def put_file(self, name: str, path: Path, media_type: str) -> ArtifactInfo:
        """Copy a finished local file into the artifact store under `name`."""

    def put_bytes(self, name: str, data: bytes, media_type: str) -> ArtifactInfo:
        """Store `data` under `name`."""


class Engine(Protocol):
    """Runs jobs. One instance per process, shared by concurrent jobs."""

    def run(self, job: JobSpec, context: JobContext) -> JobResult:
        """Dub one job; raise EngineError or JobCancelled to stop it."""

    def close(self) -> None:
        """Release models and workers at shutdown."""
