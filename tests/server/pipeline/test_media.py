"""Reading source media: each container decodes; bad input fails with the right reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from octavia.errors import Reason

from bench import _media
from server.engine import EngineError
from server.pipeline.media import decode_audio, ensure_audible, format_clock, probe

RATE = 22_050


@pytest.fixture(scope="module")
def tone() -> np.ndarray:
    seconds = np.arange(int(RATE * 2.5)) / RATE
    return (0.3 * np.sin(2 * np.pi * 330 * seconds)).astype(np.float32)


@pytest.mark.parametrize("suffix", list(_media.FORMATS))
def test_each_container_decodes_to_16k_mono(tmp_path: Path, tone: np.ndarray,
                                            suffix: str) -> None:
    path = _media.write_media(tmp_path / f"in{suffix}", tone, RATE)

    info = probe(path)
    audio = decode_audio(path)

    assert info.has_audio
    assert info.has_video == (_media.FORMATS[suffix][3] is not None)
    assert info.duration_seconds == pytest.approx(2.5, abs=0.15)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size / 16_000 == pytest.approx(2.5, abs=0.1)
    assert 0.2 < float(np.max(np.abs(audio))) < 0.4


def test_corrupt_media_is_unreadable(tmp_path: Path, tone: np.ndarray) -> None:
    good = _media.write_media(tmp_path / "good.mp4", tone, RATE).read_bytes()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(good[:64] + bytes(range(256)) * 40)

    with pytest.raises(EngineError) as caught:
        probe(corrupt)

    assert caught.value.reason == Reason.MEDIA_UNREADABLE


def test_text_file_is_unreadable(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp3"
    text.write_text("these are not the sounds you are looking for\n" * 50)

    with pytest.raises(EngineError) as caught:
        probe(text)

    assert caught.value.reason == Reason.MEDIA_UNREADABLE
    assert "Supported:" in caught.value.message


def test_video_without_audio_is_unreadable(tmp_path: Path) -> None:
    import av

    path = tmp_path / "mute.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))

    with pytest.raises(EngineError) as caught:
        probe(path)

    assert caught.value.reason == Reason.MEDIA_UNREADABLE
    assert "no audio" in caught.value.message


def test_over_long_media_is_refused(tmp_path: Path, tone: np.ndarray) -> None:
    path = _media.write_media(tmp_path / "long.flac", tone, RATE)

    with pytest.raises(EngineError) as caught:
        probe(path, max_seconds=2.0)

    assert caught.value.reason == Reason.MEDIA_TOO_LONG
    assert "0:02" in caught.value.message


def test_silence_is_refused(tmp_path: Path) -> None:
    path = _media.write_media(tmp_path / "quiet.wav", np.zeros(RATE * 2, np.float32), RATE)

    probe(path)  # a silent file is a valid file ...
    with pytest.raises(EngineError) as caught:
        ensure_audible(decode_audio(path))  # ... with nothing to dub

    assert caught.value.reason == Reason.MEDIA_SILENT


def test_probe_and_the_engine_module_do_not_import_the_ml_stack() -> None:
    code = ("import sys, server.pipeline, server.pipeline.media; "
            "print(sorted(m for m in ('torch', 'TTS', 'transformers', 'faster_whisper') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (42.9, "0:42"), (190, "3:10"),
                                               (3723, "1:02:03")])
def test_format_clock(seconds: float, text: str) -> None:
    assert format_clock(seconds) == text
