"""Writing dubbed audio and remuxing video without re-encoding it."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from bench import _media
from server.pipeline.media import decode_audio, probe
from server.pipeline.outputs import mux_video, video_suffix, write_m4a, write_wav

RATE = 22_050


@pytest.fixture(scope="module")
def sweep() -> np.ndarray:
    t = np.arange(RATE * 2) / RATE
    return (0.3 * np.sin(2 * np.pi * (200 + 100 * t) * t)).astype(np.float32)


def test_wav_and_m4a_round_trip(tmp_path: Path, sweep: np.ndarray) -> None:
    write_wav(tmp_path / "a.wav", sweep, RATE)
    write_m4a(tmp_path / "a.m4a", sweep, RATE, 96_000)

    for name in ("a.wav", "a.m4a"):
        assert probe(tmp_path / name).duration_seconds == pytest.approx(2.0, abs=0.05)
        assert decode_audio(tmp_path / name).size / 16_000 == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(("source", "expected"), [(".mp4", ".mp4"), (".mov", ".mov"),
                                                  (".mkv", ".mkv"), (".webm", ".mkv")])
def test_video_is_copied_under_a_new_audio_track(tmp_path: Path, sweep: np.ndarray,
                                                 source: str, expected: str) -> None:
    original = _media.write_media(tmp_path / f"in{source}", sweep, RATE)
    info = probe(original)
    suffix = video_suffix(info, original.name)
    out = tmp_path / f"out{suffix}"

    mux_video(original, np.zeros(44_100 * 2, np.float32), 44_100, out, 96_000)

    assert suffix == expected
    with av.open(str(out)) as dubbed, av.open(str(original)) as src:
        assert [s.type for s in dubbed.streams] == ["video", "audio"]
        assert dubbed.streams.audio[0].codec_context.name == "aac"
        copied = [bytes(p) for p in dubbed.demux(dubbed.streams.video[0]) if p.size]
        assert copied == [bytes(p) for p in src.demux(src.streams.video[0]) if p.size]
    assert probe(out).duration_seconds == pytest.approx(2.0, abs=0.15)
