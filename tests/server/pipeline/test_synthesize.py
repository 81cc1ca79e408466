"""Speech synthesis through `TTS.api.TTS`, on a tiny random-weight VITS voice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.pipeline.models import Device
from server.pipeline.synthesize import load_voice, voice_name

pytestmark = pytest.mark.ml


def test_tiny_vits_speaks(tiny_vits: Path) -> None:
    voice = load_voice(str(tiny_vits), Device("cpu"), offline=True)

    samples = voice.speak("hola mundo, esto es una prueba.", "es")

    assert voice.sample_rate == 16_000
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert 0.1 < samples.size / voice.sample_rate < 30
    assert np.isfinite(samples).all()


def test_voice_per_language_with_fallback() -> None:
    voices = {"es": "tts_models/es/css10/vits"}
    assert voice_name(voices, "xtts", "es") == "tts_models/es/css10/vits"
    assert voice_name(voices, "xtts", "ja") == "xtts"
