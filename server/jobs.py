"""The job's vocabulary: statuses, phases, event types, and how they relate."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    AWAITING_REVIEW = "awaiting_review"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


class Phase(StrEnum):
    PENDING = "pending"
    TRANSCRIBING = "transcribing"
    TRANSLATING = "translating"
    SYNTHESIZING = "synthesizing"
    UPLOADING = "uploading"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventType(StrEnum):
    SUBMITTED = "submitted"
    PHASE_CHANGED = "phase_changed"
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UPDATED = "updated"
    AWAITING_REVIEW = "awaiting_review"
    RESUMED = "resumed"

    @property
    def is_coalescible(self) -> bool:
        """Only progress ticks may be merged for a slow watcher; nothing else is ever dropped."""
        return self in (EventType.PROGRESS, EventType.UPDATED)

    @property
    def is_terminal(self) -> bool:
        return self in (EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED)


class MixMode(StrEnum):
    DUCKED = "ducked"
    DUB_ONLY = "dub_only"
    SEPARATED = "separated"


TERMINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})

RUNNING_PHASES = (Phase.TRANSCRIBING, Phase.TRANSLATING, Phase.SYNTHESIZING, Phase.UPLOADING)

# The phases a job can pause after, for a person to review its segments.
REVIEWABLE_PHASES = (Phase.TRANSCRIBING, Phase.TRANSLATING)

# The share of the overall progress bar each running phase fills, in order.
# Transcription and synthesis dominate a dub's wall time on CPU.
PHASE_SPAN: dict[Phase, tuple[float, float]] = {
    Phase.TRANSCRIBING: (0.0, 40.0),
    Phase.TRANSLATING: (40.0, 55.0),
    Phase.SYNTHESIZING: (55.0, 92.0),
    Phase.UPLOADING: (92.0, 100.0),
}


def overall_percentage(phase: Phase, fraction: float) -> float:
    """Map progress within a phase to the job's 0-100 bar."""
    start, end = PHASE_SPAN[phase]
    return round(start + (end - start) * min(max(fraction, 0.0), 1.0), 2)
