"""Fixtures for the dubbing pipeline: real small models, espeak speech, a recording JobContext.

The tiny translation and voice models are built once per session by `bench._tiny_models`
(the benchmark uses the same code) and loaded back through the production loaders.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import _media, _tiny_models
from server.engine import ArtifactInfo, JobCancelled, JobSpec
from server.jobs import Phase
from server.settings import Settings

EN_TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "Speech to speech dubbing makes videos available in many languages. "
    "We measure how long each stage takes on a small machine."
)
ES_TEXT = "Hola, buenos días. Esta es una prueba del servicio de doblaje automático."
ESPEAK_RATE = 22_050

TIMING = re.compile(r"^(\d\d):(\d\d):(\d\d)[,.](\d{3}) --> (\d\d):(\d\d):(\d\d)[,.](\d{3})$")



# --- Models ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_marian(model_root: Path) -> Path:
    return _tiny_models.build_tiny_marian(model_root / "marian-en-es")


@pytest.fixture(scope="session")
def tiny_vits(model_root: Path) -> Path:
    return _tiny_models.build_tiny_vits(model_root / "vits")


@pytest.fixture(scope="session")
def whisper_tiny_en() -> Path:
    return _tiny_models.whisper_tiny_en()


@pytest.fixture(scope="session")
def whisper_base(model_root: Path) -> Path:
    return _tiny_models.whisper_base(model_root / "whisper-base")


# --- Speech and media ------------------------------------------------------------------


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (scripts/setup installs it)")
SPOKEN = frozenset({"speech_en", "speech_es"})
"""The fixtures that speak through espeak-ng (a Debian package, not a Python one)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs espeak-ng's speech, however indirectly, carries `needs_espeak`."""
    for item in items:
        if SPOKEN & set(getattr(item, "fixturenames", ())):
            item.add_marker(needs_espeak)


@pytest.fixture(scope="session")
def speech_en(media_root: Path) -> Path:
    return _tiny_models.espeak(EN_TEXT, media_root / "en.wav", voice="en-us")


@pytest.fixture(scope="session")
def speech_es(media_root: Path) -> Path:
    return _tiny_models.espeak(ES_TEXT, media_root / "es.wav", voice="es")


@pytest.fixture(scope="session")
def speech_en_samples(speech_en: Path) -> np.ndarray:
    return _media.read_wav(speech_en, ESPEAK_RATE)


@pytest.fixture(scope="session")
def video_en(media_root: Path, speech_en_samples: np.ndarray) -> Path:
    return _media.write_media(media_root / "clip.mp4", speech_en_samples, ESPEAK_RATE)


# --- Engine ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pipeline_settings(tmp_path_factory: pytest.TempPathFactory, tiny_marian: Path,
                      tiny_vits: Path, whisper_tiny_en: Path) -> Settings:
    """Offline settings that point every model at the session's small local ones."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("data"),
        offline=True,
        device="cpu",
        asr_model=str(whisper_tiny_en),
        translation_model=str(tiny_marian),
        translation_fallback_model=str(tiny_marian.parent / "no-such-nllb"),
        tts_voices={"es": str(tiny_vits), "en": str(tiny_vits)},
        tts_fallback_voice=str(tiny_vits),
        max_media_seconds=900,
        max_resident_models=4,
    )


@pytest.fixture(scope="session")
def engine(pipeline_settings: Settings) -> Iterator[Any]:
    """One engine for the session, as in production: models load once and are reused."""
    from server.pipeline import DubbingEngine, PipelineOptions

    engine = DubbingEngine(pipeline_settings, PipelineOptions(asr_beam_size=1,
                                                              translation_beams=1))
    yield engine
    engine.close()


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., JobSpec]:
    def make(media: Path, *, target: str = "es", source: str | None = None,
             mix_mode: str = "ducked") -> JobSpec:
        return JobSpec(job_id=f"job-{tmp_path.name}", media_path=media, filename=media.name,
                       target_language=target, source_language=source, mix_mode=mix_mode,
                       workdir=tmp_path / "work")
    return make


# --- A JobContext that records everything ---------------------------------------------


@dataclass
class Event:
    kind: str
    phase: Phase | None
    fraction: float | None = None
    step: str = ""
    at: float = field(default_factory=time.monotonic)


class MemoryWriter:
    """Copies artifacts into a folder; counts nothing as stored until `put_*` returns."""

    def __init__(self, folder: Path, context: RecordingContext) -> None:
        self.folder = folder
        self.context = context
        folder.mkdir(parents=True, exist_ok=True)

    def put_file(self, name: str, path: Path, media_type: str) -> ArtifactInfo:
        assert self.context.phase == Phase.UPLOADING, "artifacts are stored only when uploading"
        return self.put_bytes(name, path.read_bytes(), media_type)

    def put_bytes(self, name: str, data: bytes, media_type: str) -> ArtifactInfo:
        (self.folder / name).write_bytes(data)
        return ArtifactInfo(name, media_type, len(data), hashlib.sha256(data).hexdigest())


CHECKPOINT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class MemoryCheckpoints:
    """In-memory `Checkpoints`; share one between contexts to run a job "again"."""

    def __init__(self, data: dict[str, bytes] | None = None) -> None:
        self.data: dict[str, bytes] = dict(data or {})
        self.saved: list[str] = []
        self._lock = threading.Lock()

    def load(self, name: str) -> bytes | None:
        assert CHECKPOINT_NAME.match(name), name
        with self._lock:
            return self.data.get(name)

    def save(self, name: str, data: bytes) -> None:
        assert CHECKPOINT_NAME.match(name), name
        assert isinstance(data, bytes)
        with self._lock:
            self.data[name] = data
            self.saved.append(name)

    def copy(self) -> MemoryCheckpoints:
        return MemoryCheckpoints(self.data)


class RecordingContext:
    """A fake JobContext: records phases, progress and updates; cancels on request.

    Only `check_cancelled` raises, so the tests see the engine's own cancellation points.
    """

    def __init__(self, folder: Path, checkpoints: MemoryCheckpoints | None = None) -> None:
        self.events: list[Event] = []
        self.updates: list[dict[str, Any]] = []
        self.phase: Phase | None = None
        self.cancelled = threading.Event()
        self.cancelled_at: float | None = None
        self.on_progress: Callable[[RecordingContext, Event], None] | None = None
        self.writer = MemoryWriter(folder, self)
        self.saved = checkpoints if checkpoints is not None else MemoryCheckpoints()

    def enter(self, phase: Phase, step: str) -> None:
        self.phase = phase
        self.events.append(Event("enter", phase, 0.0, step))

    def progress(self, fraction: float, step: str) -> None:
        event = Event("progress", self.phase, fraction, step)
        self.events.append(event)
        if self.on_progress is not None:
            self.on_progress(self, event)

    def update(self, *, source_language: str | None = None,
               media_duration_seconds: float | None = None,
               eta_seconds: float | None = None) -> None:
        values = {"source_language": source_language,
                  "media_duration_seconds": media_duration_seconds, "eta_seconds": eta_seconds}
        self.updates.append({k: v for k, v in values.items() if v is not None})

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled()

    def cancel(self) -> None:
        self.cancelled_at = time.monotonic()
        self.cancelled.set()

    def artifact_writer(self) -> MemoryWriter:
        return self.writer

    def checkpoints(self) -> MemoryCheckpoints:
        return self.saved

    @property
    def phases(self) -> list[Phase | None]:
        return [e.phase for e in self.events if e.kind == "enter"]

    def updated(self, key: str) -> list[Any]:
        return [u[key] for u in self.updates if key in u]


@pytest.fixture
def context(tmp_path: Path) -> RecordingContext:
    return RecordingContext(tmp_path / "artifacts")


def _parse_cues(text: str) -> list[tuple[float, float, str]]:
    """A strict little parser shared by the engine tests for SRT and VTT output."""
    blocks = [b for b in text.strip().split("\n\n") if b and b != "WEBVTT"]
    cues = []
    for block in blocks:
        lines = block.split("\n")
        if lines[0].isdigit():
            lines = lines[1:]
        match = TIMING.match(lines[0])
        assert match, f"bad timing line {lines[0]!r}"
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
        start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
        end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
        assert end >= start
        cues.append((start, end, "\n".join(lines[1:])))
    return cues



@pytest.fixture
def parse_cues() -> Callable[[str], list[tuple[float, float, str]]]:
    """A strict SRT/VTT parser for checking generated subtitles."""
    return _parse_cues


@pytest.fixture
def database_url() -> None:
    """The engine's tests need one store, not both: the embedded default."""
    return None
