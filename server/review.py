"""Review: read and edit a job's segments between stages, then resume or re-dub it.

The segments are the pipeline's own stage checkpoints (`pipeline.checkpoints`): the
transcript (timings and source text) and the translations (target text, each keyed by
a hash of its source line). An edit rewrites those files, so resuming the job reuses
everything it can and redoes only what an edit invalidated:

- a new source text no longer matches its translation's key: that line is translated
  again (unless the same edit gives the target text too);
- a new target text no longer matches its voiced line's key: that line is spoken again;
- new timings only refit the voiced line into its slot, which every run does anyway.

Edits run while the job's row is locked, so two reviewers never interleave their
rewrites; they are allowed only while nothing runs the job (AWAITING_REVIEW, COMPLETED).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from octavia.errors import FailedPrecondition, InvalidArgument, Reason

from .engine import Checkpoints
from .jobs import EventType, Phase, Status
from .pipeline.checkpoints import CachedTranscript, StageCheckpoints
from .pipeline.transcribe import Segment, Transcript
from .store import JobRecord

EDITABLE = (Status.AWAITING_REVIEW, Status.COMPLETED)
MAX_SEGMENT_TEXT = 2000


@dataclass(frozen=True)
class SegmentView:
    index: int
    start: float
    end: float
    source_text: str
    target_text: str
    speaker: str = ""


@dataclass(frozen=True)
class SegmentChange:
    """One segment's edit; None leaves a field as it is."""

    index: int
    source_text: str | None = None
    target_text: str | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Segments:
    source_language: str
    target_language: str
    segments: list[SegmentView]


def read_segments(store: Checkpoints, record: JobRecord) -> Segments:
    """The job's segments with their target text so far; FAILED_PRECONDITION before
    transcription has saved any."""
    cached, saved = _load(store, record)
    return _view(cached.transcript, saved, record)


def edit_segments(store: Checkpoints, record: JobRecord,
                  changes: list[SegmentChange]) -> Segments:
    """Apply `changes` to the saved transcript and translations; all or nothing."""
    if record.status not in EDITABLE:
        raise FailedPrecondition(
            f"job {record.id} is {record.status}; segments can be edited while it awaits "
            "review or once it has completed", reason=Reason.JOB_NOT_REVIEWABLE,
            retryable=record.status in (Status.PENDING, Status.PROCESSING))
    cached, saved = _load(store, record)
    transcript = cached.transcript
    segments = transcript.segments
    source, target = _languages(transcript, record)
    translations = saved.load_translations(source, target)
    targets = {i: translations.get(i, s) for i, s in enumerate(segments)}
    _check(changes, len(segments))
    for change in changes:
        segment = segments[change.index]
        if change.start is not None:
            segment.start = change.start
        if change.end is not None:
            segment.end = change.end
        if change.source_text is not None:
            segment.text = change.source_text.strip()
            segment.words = []  # the recognised words no longer match the text
            targets[change.index] = None  # translate the new line again
        if change.target_text is not None:
            targets[change.index] = change.target_text.strip()
    _check_timings(segments, transcript.duration)
    saved.save_transcript(transcript, cached.requested_language, cached.asr_model or "")
    saved.save_target_texts(segments, targets, source, target, translations.model)
    return _view(transcript, saved, record)


def resumption(job: JobRecord) -> EventType:
    """The change that queues a job again: on from review, or a re-dub as a new version."""
    if job.status == Status.AWAITING_REVIEW:
        job.status = Status.PENDING
        job.current_step = "Resumed after review; waiting in the queue"
    elif job.status == Status.COMPLETED:
        job.version += 1
        job.status = Status.PENDING
        job.phase = Phase.PENDING
        job.progress = 0.0
        job.current_step = f"Re-dub as version {job.version}; waiting in the queue"
        job.started_at = job.completed_at = None
        job.output_file = None
        job.artifacts = []
        job.eta_seconds = None
    else:
        raise FailedPrecondition(
            f"job {job.id} is {job.status}; only a job that awaits review or has completed "
            "can be resumed", reason=Reason.JOB_NOT_REVIEWABLE)
    return EventType.RESUMED


# --- Internals ---------------------------------------------------------------------------


def _load(store: Checkpoints, record: JobRecord) -> tuple[CachedTranscript, StageCheckpoints]:
    saved = StageCheckpoints(store, record.id, strict=True)
    cached = saved.load_transcript(record.source_language, any_language=True)
    if cached is None:
        raise FailedPrecondition(
            f"job {record.id} has no segments yet: they exist once it has been transcribed",
            reason=Reason.NO_SEGMENTS, retryable=not record.is_terminal)
    return cached, saved


def _languages(transcript: Transcript, record: JobRecord) -> tuple[str, str]:
    return record.source_language or transcript.language, record.target_language


def _view(transcript: Transcript, saved: StageCheckpoints, record: JobRecord) -> Segments:
    source, target = _languages(transcript, record)
    translations = saved.load_translations(source, target)
    views = [SegmentView(i, s.start, s.end, s.text,
                         translations.get(i, s) or (s.text if source == target else ""))
             for i, s in enumerate(transcript.segments)]
    return Segments(source, target, views)


def _check(changes: list[SegmentChange], count: int) -> None:
    if not changes:
        raise InvalidArgument("no edits: give at least one segment edit")
    seen: set[int] = set()
    for change in changes:
        if not 0 <= change.index < count:
            raise InvalidArgument(f"no segment {change.index}: the job has segments 0 to "
                                  f"{count - 1}")
        if change.index in seen:
            raise InvalidArgument(f"segment {change.index} is edited twice in one request")
        seen.add(change.index)
        for name in ("source_text", "target_text"):
            text = getattr(change, name)
            if text is not None and not text.strip():
                raise InvalidArgument(f"segment {change.index}: `{name}` must not be empty")
            if text is not None and len(text) > MAX_SEGMENT_TEXT:
                raise InvalidArgument(f"segment {change.index}: `{name}` is longer than "
                                      f"{MAX_SEGMENT_TEXT} characters")
        for name in ("start", "end"):
            value = getattr(change, name)
            if value is not None and not math.isfinite(value):
                raise InvalidArgument(f"segment {change.index}: `{name}_seconds` must be a "
                                      "finite number")


def _check_timings(segments: list[Segment], duration: float) -> None:
    previous_end = 0.0
    for index, segment in enumerate(segments):
        if segment.start < 0 or segment.end <= segment.start:
            raise InvalidArgument(f"segment {index}: start must be at least 0 and before "
                                  f"its end ({segment.start:.3f} → {segment.end:.3f})")
        if segment.end > duration + 1e-3:
            raise InvalidArgument(f"segment {index}: end {segment.end:.3f} s is past the end "
                                  f"of the media ({duration:.3f} s)")
        if segment.start < previous_end - 1e-3:
            raise InvalidArgument(f"segment {index} would start at {segment.start:.3f} s, "
                                  f"before segment {index - 1} ends ({previous_end:.3f} s)")
        previous_end = segment.end
