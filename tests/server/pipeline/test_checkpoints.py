"""A job run again (its worker died) resumes from its checkpoints instead of starting over.

One real first run (overlapped) saves the checkpoints; the other runs start from copies
of them, with speech recognition made to fail and the voice's `speak` counted, in both
the overlapped and the sequential schedule.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import _media
from server.engine import JobResult, JobSpec
from server.jobs import Phase, overall_percentage
from server.pipeline.checkpoints import segment_name
from tests.server.pipeline.conftest import MemoryCheckpoints, RecordingContext

pytestmark = pytest.mark.ml

RUNNING = [Phase.TRANSCRIBING, Phase.TRANSLATING, Phase.SYNTHESIZING, Phase.UPLOADING]
TEXT_ARTIFACTS = ("transcript.json", "subtitles.en.srt", "subtitles.en.vtt",
                  "subtitles.es.srt", "subtitles.es.vtt")
RATE = 44_100


@dataclass
class Run:
    context: RecordingContext
    result: JobResult
    work: dict[str, int]

    @property
    def folder(self) -> Path:
        return self.context.writer.folder

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def document(self) -> dict[str, Any]:
        return json.loads(self.read("transcript.json"))  # type: ignore[no-any-return]

    def audio(self) -> np.ndarray:
        return _media.read_wav(self.folder / "dubbed.wav", RATE)


def run_job(engine: Any, media: Path, folder: Path, saved: MemoryCheckpoints) -> Run:
    """Run the job `job-resume` (the same id every time, as a re-run has) into `folder`."""
    job = JobSpec(job_id="job-resume", media_path=media, filename=media.name,
                  target_language="es", source_language=None, workdir=folder / "work")
    context = RecordingContext(folder / "artifacts", saved)
    before = engine.work
    result = engine.run(job, context)
    after = engine.work
    work = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    return Run(context, result, {k: v for k, v in work.items() if v})


@pytest.fixture(scope="module")
def first(engine: Any, speech_en: Path, tmp_path_factory: pytest.TempPathFactory,
          ) -> tuple[Run, MemoryCheckpoints]:
    saved = MemoryCheckpoints()
    run = run_job(engine, speech_en, tmp_path_factory.mktemp("first"), saved)
    return run, saved


@pytest.fixture(scope="module")
def sequential(engine: Any, pipeline_settings: Any) -> Any:
    from server.pipeline import DubbingEngine, PipelineOptions

    other = DubbingEngine(pipeline_settings, PipelineOptions(
        overlap=False, asr_beam_size=1, translation_beams=1))
    other.models = engine.models  # the same loaded models
    return other


@pytest.fixture(params=["overlapped", "sequential"])
def any_engine(request: pytest.FixtureRequest, engine: Any, sequential: Any) -> Any:
    return engine if request.param == "overlapped" else sequential


@pytest.fixture
def spoken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The texts the voice model is asked to speak; speech recognition must not run."""
    from server.pipeline import _job
    from server.pipeline.synthesize import Voice

    texts: list[str] = []
    speak = Voice.speak

    def counting(self: Voice, text: str, language: str) -> np.ndarray:
        texts.append(text)
        return speak(self, text, language)

    def no_asr(*_: Any, **__: Any) -> Any:
        raise AssertionError("speech recognition ran on a resumed job")

    monkeypatch.setattr(Voice, "speak", counting)
    monkeypatch.setattr(_job, "stream", no_asr)
    monkeypatch.setattr(_job, "transcribe", no_asr)
    yield texts


def check_story(run: Run) -> None:
    assert run.context.phases == RUNNING
    bar = [overall_percentage(e.phase, e.fraction or 0.0) for e in run.context.events
           if e.phase is not None]
    assert bar == sorted(bar) and bar[-1] == 100.0


def test_first_run_saves_every_stage(first: tuple[Run, MemoryCheckpoints]) -> None:
    run, saved = first
    segments = run.document()["segments"]
    count = len(segments)
    assert count >= 2

    assert set(saved.data) == {"transcript.json", "translation.json",
                               *(segment_name(i) for i in range(count))}
    assert run.work == {"transcribed": 1, "translated": count, "voiced": count}
    transcript = json.loads(saved.data["transcript.json"])
    assert transcript["language"] == "en" and transcript["requested_language"] is None
    assert [s["text"] for s in transcript["segments"]] == [s["text"] for s in segments]
    assert [len(s["words"]) for s in transcript["segments"]] == \
        [len(s["words"]) for s in segments]
    translation = json.loads(saved.data["translation.json"])
    assert [e["text"] for e in translation["segments"]] == [s["translation"] for s in segments]
    with np.load(io.BytesIO(saved.data[segment_name(0)]), allow_pickle=False) as line:
        assert line["speech"].dtype == np.float32 and line["speech"].size > 0
        assert int(line["sample_rate"]) > 0


def test_a_rerun_with_every_checkpoint_computes_nothing(
    first: tuple[Run, MemoryCheckpoints], any_engine: Any, spoken: list[str], tmp_path: Path,
    speech_en: Path,
) -> None:
    reference, saved = first
    count = len(reference.document()["segments"])
    again = saved.copy()

    run = run_job(any_engine, speech_en, tmp_path, again)

    assert spoken == []
    assert run.work == {"transcript_reused": 1, "translation_reused": count,
                        "speech_reused": count}
    assert again.saved == [], "nothing new to save"
    check_story(run)
    assert run.context.updated("source_language") == ["en"]
    assert {a.name for a in run.result.artifacts} == {a.name for a in reference.result.artifacts}
    for name in TEXT_ARTIFACTS:
        assert run.read(name) == reference.read(name), name
    np.testing.assert_array_equal(run.audio(), reference.audio())


def test_a_run_that_died_after_transcription_translates_and_voices(
    first: tuple[Run, MemoryCheckpoints], any_engine: Any, spoken: list[str], tmp_path: Path,
    speech_en: Path,
) -> None:
    reference, saved = first
    segments = reference.document()["segments"]
    count = len(segments)
    partial = MemoryCheckpoints({"transcript.json": saved.data["transcript.json"]})

    run = run_job(any_engine, speech_en, tmp_path, partial)

    assert run.work == {"transcript_reused": 1, "translated": count, "voiced": count}
    assert len(spoken) == count
    check_story(run)
    assert set(partial.saved) == {"translation.json",
                                  *(segment_name(i) for i in range(count))}
    # Greedy translation is deterministic; the tiny VITS samples noise, so no audio check.
    assert run.read("subtitles.en.srt") == reference.read("subtitles.en.srt")
    assert [s["translation"] for s in run.document()["segments"]] == \
        [s["translation"] for s in segments]
    assert partial.data["translation.json"] == saved.data["translation.json"]


def test_an_edited_line_is_the_only_one_voiced_again(
    first: tuple[Run, MemoryCheckpoints], any_engine: Any, spoken: list[str], tmp_path: Path,
    speech_en: Path,
) -> None:
    reference, saved = first
    segments = reference.document()["segments"]
    count = len(segments)
    edited = saved.copy()
    translation = json.loads(edited.data["translation.json"])
    translation["segments"][1]["text"] = "Una frase corregida a mano."
    edited.data["translation.json"] = json.dumps(translation).encode()

    run = run_job(any_engine, speech_en, tmp_path, edited)

    assert spoken == ["Una frase corregida a mano."]
    assert run.work == {"transcript_reused": 1, "translation_reused": count, "voiced": 1,
                        "speech_reused": count - 1}
    assert edited.saved == [segment_name(1)]
    check_story(run)
    document = run.document()
    assert document["segments"][1]["translation"] == "Una frase corregida a mano."
    for index in range(count):
        if index != 1:
            assert document["segments"][index] == segments[index]
    # The audio is the first run's everywhere but around the edited line (and its ducking).
    audio, before = run.audio(), reference.audio()
    assert audio.size == before.size
    span = [min(segments[1]["dub"]["start"], document["segments"][1]["dub"]["start"]),
            max(segments[1]["dub"]["end"], document["segments"][1]["dub"]["end"])]
    lo, hi = int((span[0] - 0.3) * RATE), int((span[1] + 0.3) * RATE)
    np.testing.assert_array_equal(audio[:lo], before[:lo])
    np.testing.assert_array_equal(audio[hi:], before[hi:])
    assert not np.array_equal(audio[lo:hi], before[lo:hi])


class BrokenCheckpoints:
    """A store that is down: every load and save fails."""

    def load(self, name: str) -> bytes | None:
        raise OSError("the artifact store is unreachable")

    def save(self, name: str, data: bytes) -> None:
        raise OSError("the artifact store is unreachable")


def test_checkpoint_failures_do_not_fail_the_job(
    first: tuple[Run, MemoryCheckpoints], sequential: Any, tmp_path: Path, speech_en: Path,
) -> None:
    reference, saved = first
    garbled = MemoryCheckpoints({name: b"\x00garbage" for name in saved.data})

    run = run_job(sequential, speech_en, tmp_path / "garbled", garbled)
    assert run.work["transcribed"] == 1 and "speech_reused" not in run.work
    assert run.read("subtitles.en.srt") == reference.read("subtitles.en.srt")

    broken = run_job(sequential, speech_en, tmp_path / "broken",
                     BrokenCheckpoints())  # type: ignore[arg-type]
    assert broken.work["transcribed"] == 1
    check_story(broken)


def test_a_run_that_died_while_voicing_keeps_the_lines_it_voiced(
    first: tuple[Run, MemoryCheckpoints], engine: Any, spoken: list[str], tmp_path: Path,
    speech_en: Path,
) -> None:
    """Translation was not saved yet: it runs again, gives the same texts, and the lines
    already voiced for those texts are reused."""
    reference, saved = first
    count = len(reference.document()["segments"])
    partial = MemoryCheckpoints({name: saved.data[name]
                                 for name in ("transcript.json", segment_name(0))})

    run = run_job(engine, speech_en, tmp_path, partial)

    assert run.work == {"transcript_reused": 1, "translated": count, "voiced": count - 1,
                        "speech_reused": 1}
    assert len(spoken) == count - 1
    check_story(run)
