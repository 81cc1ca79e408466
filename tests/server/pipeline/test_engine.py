"""The whole engine, end to end without gRPC: real Whisper, tiny random translation and voice.

The tiny models talk nonsense, so these tests check structure: phases, progress, timings,
and that every artifact is complete and decodable.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from octavia.errors import Reason

from bench import _media, _tiny_models
from server.engine import EngineError, JobCancelled
from server.jobs import Phase

pytestmark = pytest.mark.ml

RUNNING = [Phase.TRANSCRIBING, Phase.TRANSLATING, Phase.SYNTHESIZING, Phase.UPLOADING]


def media_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


def check_progress(context: Any) -> None:
    """Phases in order, each once; progress within [0, 1] and never going back in a phase."""
    assert context.phases == RUNNING
    by_phase: dict[Phase, list[float]] = {}
    for event in context.events:
        by_phase.setdefault(event.phase, []).append(event.fraction)
    for phase, fractions in by_phase.items():
        assert fractions == sorted(fractions), f"progress went back in {phase}"
        assert fractions[0] >= 0.0 and fractions[-1] == 1.0


def test_english_video_is_dubbed_to_spanish(engine: Any, make_job: Any, context: Any,
                                            video_en: Path, parse_cues: Any) -> None:
    result = engine.run(make_job(video_en), context)

    check_progress(context)
    assert context.updated("source_language") == ["en"]
    assert context.updated("media_duration_seconds")[0] == pytest.approx(11.7, abs=0.2)
    etas = context.updated("eta_seconds")
    assert etas and all(eta >= 0 for eta in etas)

    names = {a.name for a in result.artifacts}
    assert names == {"dubbed.wav", "dubbed.m4a", "dubbed.mp4", "transcript.json",
                     "subtitles.en.srt", "subtitles.en.vtt",
                     "subtitles.es.srt", "subtitles.es.vtt"}
    assert result.output_file == "dubbed.mp4"
    stored = context.writer.folder
    for artifact in result.artifacts:
        assert (stored / artifact.name).stat().st_size == artifact.size_bytes > 0

    duration = media_seconds(video_en)
    assert media_seconds(stored / "dubbed.wav") == pytest.approx(duration, abs=0.05)
    assert media_seconds(stored / "dubbed.m4a") == pytest.approx(duration, abs=0.1)
    with av.open(str(stored / "dubbed.mp4")) as dubbed, av.open(str(video_en)) as source:
        assert len(dubbed.streams.video) == 1 and len(dubbed.streams.audio) == 1
        assert dubbed.streams.video[0].codec_context.name == "h264"
        assert dubbed.streams.audio[0].codec_context.name == "aac"
        copied = [bytes(p) for p in dubbed.demux(dubbed.streams.video[0]) if p.size]
        original = [bytes(p) for p in source.demux(source.streams.video[0]) if p.size]
        assert copied == original, "the video stream must be copied, not re-encoded"
    assert media_seconds(stored / "dubbed.mp4") == pytest.approx(duration, abs=0.1)

    document = json.loads((stored / "transcript.json").read_text())
    assert document["source_language"] == "en" and document["target_language"] == "es"
    assert document["models"]["tts"] and document["models"]["translation"]
    segments = document["segments"]
    assert len(segments) >= 2
    assert "lazy dog" in segments[0]["text"].lower()
    for index, segment in enumerate(segments):
        dub = segment["dub"]
        assert 0.8 <= dub["rate"] <= 1.35
        assert dub["start"] == segment["start"]
        limit = segments[index + 1]["start"] if index + 1 < len(segments) else duration
        assert dub["end"] <= limit + 0.01, "a dubbed line runs into the next one"
        assert dub["end"] - dub["start"] >= segment["end"] - segment["start"] - 0.01
        assert isinstance(dub["residual_seconds"], float)
    assert document["sync"]["max_abs_residual_seconds"] >= 0

    for language in ("en", "es"):
        for suffix in ("srt", "vtt"):
            cues = parse_cues((stored / f"subtitles.{language}.{suffix}").read_text())
            assert len(cues) == len(segments)
            assert all(start >= 0 and end <= duration + 0.01 for start, end, _ in cues)
    source_cues = parse_cues((stored / "subtitles.en.srt").read_text())
    assert [c[2] for c in source_cues] == [s["text"] for s in segments]


@pytest.fixture(scope="module")
def hum_then_speech(media_root: Path, speech_en_samples: np.ndarray) -> Path:
    """Three seconds of a quiet hum, then the English clip over the same hum."""
    rate = 22_050
    samples = np.concatenate([np.zeros(3 * rate, np.float32), speech_en_samples])
    hum = 0.05 * np.sin(2 * np.pi * 100 * np.arange(samples.size) / rate)
    return _media.write_media(media_root / "hum.flac", samples + hum.astype(np.float32), rate)


@pytest.mark.parametrize(("mode", "level"), [("ducked", 0.035), ("dub_only", 0.0)])
def test_audio_only_mix_modes(engine: Any, make_job: Any, context: Any,
                              hum_then_speech: Path, mode: str, level: float) -> None:
    result = engine.run(make_job(hum_then_speech, source="en", mix_mode=mode), context)

    assert result.output_file == "dubbed.wav"
    assert not any(a.media_type.startswith("video/") for a in result.artifacts)
    assert context.updated("source_language") == []  # given, not detected
    document = json.loads((context.writer.folder / "transcript.json").read_text())
    first = document["segments"][0]["dub"]["start"]
    assert first > 2.5
    dubbed = _media.read_wav(context.writer.folder / "dubbed.wav", 44_100)
    before = dubbed[: int((first - 0.3) * 44_100)]  # before the ducking ramp
    rms = float(np.sqrt(np.mean(before**2)))
    assert rms == pytest.approx(level, abs=0.005), "the original is kept (ducked) or dropped"


def test_same_language_skips_translation(engine: Any, make_job: Any, context: Any,
                                         speech_en: Path) -> None:
    engine.run(make_job(speech_en, target="en"), context)

    document = json.loads((context.writer.folder / "transcript.json").read_text())
    assert all(s["translation"] == s["text"] for s in document["segments"])
    assert document["models"]["translation"] is None
    translating = [e.step for e in context.events if e.phase == Phase.TRANSLATING]
    assert any("nothing to translate" in step for step in translating)


@pytest.mark.parametrize(("name", "reason"), [("silence.wav", Reason.MEDIA_SILENT),
                                              ("garbage.mp4", Reason.MEDIA_UNREADABLE)])
def test_bad_input_fails_with_its_reason(engine: Any, make_job: Any, context: Any,
                                         tmp_path: Path, name: str, reason: str) -> None:
    path = tmp_path / name
    if name == "silence.wav":
        _media.write_media(path, np.zeros(16_000 * 3, np.float32), 16_000)
    else:
        path.write_bytes(b"\x00not a video" * 1000)

    with pytest.raises(EngineError) as caught:
        engine.run(make_job(path), context)

    assert caught.value.reason == reason
    assert not any(context.writer.folder.iterdir())


def test_separated_without_a_model_fails_before_any_work(engine: Any, make_job: Any,
                                                         context: Any,
                                                         speech_en: Path) -> None:
    with pytest.raises(EngineError) as caught:
        engine.run(make_job(speech_en, mix_mode="separated"), context)

    assert caught.value.reason == Reason.MODEL_MISSING
    assert context.events == []


@pytest.fixture(scope="module")
def three_clips(media_root: Path, speech_en_samples: np.ndarray) -> Path:
    pause = np.zeros(22_050, np.float32)
    samples = np.concatenate([speech_en_samples, pause] * 3)
    return _media.write_media(media_root / "three.wav", samples, 22_050)


@pytest.mark.parametrize("phase", [Phase.TRANSCRIBING, Phase.SYNTHESIZING])
def test_cancel_between_segments_stops_within_a_second(engine: Any, make_job: Any,
                                                       context: Any, three_clips: Path,
                                                       phase: Phase) -> None:
    outcome: list[BaseException] = []
    ended = threading.Event()

    def work() -> None:
        try:
            engine.run(make_job(three_clips), context)
        except BaseException as exc:
            outcome.append(exc)
        finally:
            ended.set()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 120
    while not any(e.phase == phase and (e.fraction or 0) > 0 for e in context.events):
        assert time.monotonic() < deadline and not ended.is_set(), "never reached the phase"
        time.sleep(0.005)
    context.cancel()
    assert ended.wait(5)
    stopped = time.monotonic()
    worker.join()

    assert outcome and isinstance(outcome[0], JobCancelled)
    # A synthesis unit is one line; a transcription unit is one Whisper decoding window
    # (up to 30 s of speech), which tiny.en decodes in about a second on two cores.
    assert stopped - context.cancelled_at < (1.0 if phase == Phase.SYNTHESIZING else 2.0)
    # Overlapped stages may have moved the bar into a later phase before the cancel;
    # none may be entered after it.
    late = [e.phase for e in context.events if e.kind == "enter" and e.at > context.cancelled_at]
    assert not late, "the job went on to another phase after the cancel"
    assert not any(context.writer.folder.iterdir()), "no artifact of a cancelled job"


@pytest.fixture(scope="module")
def ten_minutes(media_root: Path) -> tuple[Path, list[float]]:
    """Ten minutes of audio: espeak sentences every 20 s with silence between."""
    rate = 22_050
    sentences = [
        "Good morning, this is the first announcement of the day.",
        "Please remember to save your work before the meeting starts.",
        "The weather today is sunny with a light breeze from the west.",
    ]
    clips = [_media.read_wav(_tiny_models.espeak(text, media_root / f"s{i}.wav"), rate)
             for i, text in enumerate(sentences)]
    track = np.zeros(rate * 600, np.float32)
    starts = [float(s) for s in range(5, 600, 20)]
    for index, start in enumerate(starts):
        clip = clips[index % len(clips)]
        at = int(start * rate)
        track[at:at + clip.size] = clip[: track.size - at]
    return _media.write_media(media_root / "ten-minutes.mp3", track, rate), starts


@pytest.mark.slow
def test_ten_minutes_are_dubbed_end_to_end(engine: Any, make_job: Any, context: Any,
                                           ten_minutes: tuple[Path, list[float]]) -> None:
    media, starts = ten_minutes

    result = engine.run(make_job(media, source="en"), context)

    check_progress(context)
    stored = context.writer.folder
    assert result.output_file == "dubbed.wav"
    assert media_seconds(stored / "dubbed.wav") == pytest.approx(media_seconds(media), abs=0.1)
    segments = json.loads((stored / "transcript.json").read_text())["segments"]
    for start in starts:
        assert any(s["start"] - 1 <= start <= s["end"] for s in segments), \
            f"the sentence at {start}s was not dubbed"
    dubbed = _media.read_wav(stored / "dubbed.wav", 16_000)
    last = segments[-1]["dub"]
    assert np.abs(dubbed[int(last["start"] * 16_000):int(last["end"] * 16_000)]).max() > 0.01
