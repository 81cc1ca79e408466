"""Speech to timed text with faster-whisper (CTranslate2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from octavia.errors import Reason

from ..engine import EngineError
from .media import ASR_SAMPLE_RATE
from .models import Device, load_or_missing
from .options import PipelineOptions


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float


@dataclass
class Segment:
    """One stretch of speech: the unit that is translated, synthesized and fitted."""

    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    translation: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Transcript:
    language: str
    language_probability: float
    duration: float
    segments: list[Segment]


def load_whisper(name: str, device: Device, *, offline: bool, cpu_threads: int = 0) -> Any:
    """A faster-whisper model from a size name, a hub id or a local CTranslate2 folder."""
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]

    if Path(name).expanduser().is_dir() and not (Path(name).expanduser() / "model.bin").exists():
        from .models import model_missing

        raise model_missing("speech recognition", name, "asr_model", offline=offline,
                            cause=FileNotFoundError(f"no model.bin in {name}"))
    return load_or_missing(
        lambda: WhisperModel(
            str(Path(name).expanduser()) if Path(name).expanduser().exists() else name,
            device=device.name,
            compute_type=device.whisper_compute_type,
            cpu_threads=cpu_threads,
            local_files_only=offline,
        ),
        kind="speech recognition", name=name, setting="asr_model", offline=offline,
    )


def transcribe(
    model: Any,
    audio: np.ndarray,
    *,
    language: str | None,
    options: PipelineOptions,
    on_segment: Callable[[float], None],
) -> Transcript:
    """Transcribe 16 kHz mono `audio`; `on_segment(seconds_done)` runs after every segment.

    `on_segment` is where the caller reports progress and checks for cancellation, so
    it may raise to stop decoding between segments.
    """
    duration = audio.size / ASR_SAMPLE_RATE
    pieces, info = model.transcribe(
        audio,
        language=language,
        beam_size=options.asr_beam_size,
        temperature=options.asr_temperature,
        vad_filter=True,
        word_timestamps=True,
        condition_on_previous_text=False,
    )
    segments: list[Segment] = []
    for piece in pieces:
        text = piece.text.strip()
        if text:
            segments.append(Segment(
                start=max(float(piece.start), 0.0),
                end=min(float(piece.end), duration),
                text=text,
                words=[Word(float(w.start), float(w.end), w.word.strip(), float(w.probability))
                       for w in (piece.words or [])],
            ))
        on_segment(min(float(piece.end), duration))
    if not segments:
        raise EngineError("No speech was found in the audio.", reason=Reason.MEDIA_SILENT)
    return Transcript(
        language=info.language,
        language_probability=float(info.language_probability),
        duration=duration,
        segments=segments,
    )
