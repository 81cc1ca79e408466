"""Segments for a job of the scripted engine, which transcribes nothing.

They are written through the pipeline's own checkpoint code, exactly as the real engine
saves them after transcribing and translating, so ListSegments, UpdateSegments and the
review commands read and edit them as they would a real job's.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.app import OctaviaServer
from server.pipeline.checkpoints import StageCheckpoints
from server.pipeline.transcribe import Segment, Transcript

Line = tuple[float, float, str, str]
"""start, end (seconds), source text, target text."""

LINES: tuple[Line, ...] = (
    (0.0, 0.4, "Hello there.", "Hola."),
    (0.5, 0.9, "See you [soon].", "Hasta [pronto]."),
)
"""Two lines inside the one-second test tone; brackets check that nothing reads markup."""


def write_segments(
    server: OctaviaServer,
    job_id: str,
    lines: Sequence[Line] = LINES,
    *,
    source: str = "en",
    target: str = "es",
    duration: float = 1.0,
    translated: bool = True,
) -> None:
    """Save a transcript (and, when `translated`, its translation) for `job_id`, as the
    pipeline's transcribing and translating stages would."""
    saved = StageCheckpoints(server.artifacts.checkpoints(job_id), job_id, strict=True)
    segments = [Segment(start, end, text, translation=translation)
                for start, end, text, translation in lines]
    saved.save_transcript(Transcript(source, 1.0, duration, segments), None, "scripted")
    if translated:
        saved.save_translations(segments, source, target, "scripted")
