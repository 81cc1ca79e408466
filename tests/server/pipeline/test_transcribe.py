"""Real speech recognition on espeak speech with real (small) Whisper models."""

from __future__ import annotations

import re
from pathlib import Path

import jiwer
import pytest

from server.pipeline.media import decode_audio
from server.pipeline.models import Device
from server.pipeline.options import PipelineOptions
from server.pipeline.transcribe import Transcript, load_whisper, transcribe

pytestmark = pytest.mark.ml

EN_TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "Speech to speech dubbing makes videos available in many languages. "
    "We measure how long each stage takes on a small machine."
)
GREEDY = PipelineOptions(asr_beam_size=1)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def word_error_rate(transcript: Transcript, reference: str) -> float:
    hypothesis = " ".join(segment.text for segment in transcript.segments)
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


def run(model_path: Path, media: Path, language: str | None = None) -> tuple[Transcript,
                                                                           list[float]]:
    model = load_whisper(str(model_path), Device("cpu"), offline=True)
    done: list[float] = []
    transcript = transcribe(model, decode_audio(media), language=language, options=GREEDY,
                            on_segment=done.append)
    return transcript, done


def check_timings(transcript: Transcript, done: list[float]) -> None:
    assert done == sorted(done) and done[-1] <= transcript.duration
    for before, after in zip(transcript.segments, transcript.segments[1:], strict=False):
        assert before.start < before.end <= after.start + 0.05
    for segment in transcript.segments:
        assert segment.words, "word timestamps were asked for"
        assert segment.start - 0.05 <= segment.words[0].start
        assert segment.words[-1].end <= segment.end + 0.05


def test_tiny_en_transcribes_english(whisper_tiny_en: Path, speech_en: Path) -> None:
    transcript, done = run(whisper_tiny_en, speech_en)

    assert transcript.language == "en"
    assert word_error_rate(transcript, EN_TEXT) <= 0.35  # measured ≈ 0.24
    assert len(transcript.segments) >= 2
    check_timings(transcript, done)


@pytest.mark.slow
def test_base_transcribes_english_better(whisper_base: Path, speech_en: Path) -> None:
    transcript, done = run(whisper_base, speech_en)

    assert transcript.language == "en" and transcript.language_probability > 0.5
    assert word_error_rate(transcript, EN_TEXT) <= 0.2  # measured ≈ 0.10
    check_timings(transcript, done)


@pytest.mark.slow
def test_base_detects_spanish(whisper_base: Path, speech_es: Path) -> None:
    transcript, _ = run(whisper_base, speech_es)

    assert transcript.language == "es"
    assert "prueba" in normalise(" ".join(s.text for s in transcript.segments))
