"""`octavia dub` in a subprocess, with the product's real engine, on real speech."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from server.settings import Settings

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.ml
def test_dub_turns_an_english_recording_into_spanish_files(
    tmp_path: Path, speech_en: Path, pipeline_settings: Settings
) -> None:
    clip = tmp_path / "talk.wav"
    clip.write_bytes(speech_en.read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTAVIA_")}
    env.update(
        PYTHONPATH=str(REPO),
        OCTAVIA_DATA_DIR=str(tmp_path / "data"),
        OCTAVIA_OFFLINE="true",
        OCTAVIA_DEVICE="cpu",
        OCTAVIA_ASR_MODEL=pipeline_settings.asr_model,
        OCTAVIA_TRANSLATION_MODEL=pipeline_settings.translation_model,
        OCTAVIA_TRANSLATION_FALLBACK_MODEL=pipeline_settings.translation_fallback_model,
        OCTAVIA_TTS_VOICES=json.dumps(pipeline_settings.tts_voices),
        OCTAVIA_TTS_FALLBACK_VOICE=pipeline_settings.tts_fallback_voice,
    )

    done = subprocess.run(
        [sys.executable, "-c", "import sys; from octavia.cli import main; sys.exit(main())",
         "dub", "talk.wav", "--to", "es", "--from", "en"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "talk.dub-es"
    names = {p.name for p in out.iterdir()}
    assert {"dubbed.wav", "dubbed.m4a", "transcript.json", "subtitles.en.srt",
            "subtitles.en.vtt", "subtitles.es.srt", "subtitles.es.vtt"} <= names, names
    transcript = json.loads((out / "transcript.json").read_text())
    assert transcript["segments"]
    audio = next(out / n for n in names if n.endswith(".wav"))
    with av.open(str(audio)) as container:
        assert container.streams.audio
        assert float(container.duration or 0) / av.time_base > 5
    assert "Traceback" not in done.stderr
