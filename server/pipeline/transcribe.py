"""Speech to timed text with faster-whisper (CTranslate2)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    from faster_whisper import WhisperModel

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


@dataclass(frozen=True)
class TranscriptStream:
    """A transcription under way: the language is known up front, segments come lazily.

    `pieces` yields `(segment, seconds_done)` per decoded Whisper segment; `segment` is
    None for one with no text. Decoding happens as the iterator is consumed.
    """

    language: str
    language_probability: float
    duration: float
    pieces: Iterator[tuple[Segment | None, float]]


def stream(model: Any, audio: np.ndarray, *, language: str | None,
           options: PipelineOptions) -> TranscriptStream:
    """Start transcribing 16 kHz mono `audio` (language detection and VAD run here)."""
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

    def segments() -> Iterator[tuple[Segment | None, float]]:
        for piece in pieces:
            text = piece.text.strip()
            end = min(float(piece.end), duration)
            segment = Segment(
                start=max(float(piece.start), 0.0), end=end, text=text,
                words=[Word(float(w.start), float(w.end), w.word.strip(), float(w.probability))
                       for w in (piece.words or [])],
            ) if text else None
            yield segment, end

    return TranscriptStream(language=info.language,
                            language_probability=float(info.language_probability),
                            duration=duration, pieces=segments())


def no_speech() -> EngineError:
    return EngineError("No speech was found in the audio.", reason=Reason.MEDIA_SILENT)


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
    started = stream(model, audio, language=language, options=options)
    segments: list[Segment] = []
    for segment, done in started.pieces:
        if segment is not None:
            segments.append(segment)
        on_segment(done)
    if not segments:
        raise no_speech()
    return Transcript(
        language=started.language,
        language_probability=started.language_probability,
        duration=started.duration,
        segments=segments,
    )
