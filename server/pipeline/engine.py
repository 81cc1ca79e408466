"""The real dubbing engine: speech recognition, translation, speech synthesis, mixing.

One `DubbingEngine` per process holds what jobs share: loaded models (an LRU cache),
the device, and the stage speeds behind ETA estimates. Each `run` is one job, driven by
`_job.DubbingJob` in the calling worker thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from octavia.errors import Reason

from ..engine import EngineError, JobContext, JobResult, JobSpec
from ..settings import Settings
from ._job import DubbingJob
from .eta import SpeedBook
from .mix import load_separator
from .models import Device, ModelCache, Resident, apply_offline_mode, resolve_device
from .options import PipelineOptions, StageThreads, stage_threads
from .synthesize import load_voice, voice_name
from .transcribe import load_whisper
from .translate import load_translator, nllb_code, pair_model_name


class DubbingEngine:
    """Dubs jobs with faster-whisper, MarianMT/NLLB (CTranslate2) and Coqui TTS."""

    def __init__(self, settings: Settings, options: PipelineOptions | None = None) -> None:
        self.settings = settings
        self.options = options or PipelineOptions()
        self.models = ModelCache(settings.max_resident_models)
        self._lock = threading.Lock()
        self._device: Device | None = None
        self._speeds: SpeedBook | None = None
        self._pair_models: dict[tuple[str, str], str] = {}
        self._work: Counter[str] = Counter()
        apply_offline_mode(settings.offline)

    def run(self, job: JobSpec, context: JobContext) -> JobResult:
        return DubbingJob(self, job, context).run()

    def close(self) -> None:
        self.models.clear()

    @property
    def work(self) -> dict[str, int]:
        """Process totals of what jobs computed and reused from checkpoints: segments
        `translated`/`translation_reused`, `voiced`/`speech_reused`, transcripts
        `transcribed`/`transcript_reused`."""
        with self._lock:
            return dict(self._work)

    def record_work(self, work: Mapping[str, int]) -> None:
        with self._lock:
            self._work.update(work)

    # --- Shared state, created on first use so constructing the engine stays cheap ----

    @property
    def device(self) -> Device:
        with self._lock:
            if self._device is None:
                self._device = resolve_device(self.settings.device)
            return self._device

    @property
    def speeds(self) -> SpeedBook:
        device = self.device
        with self._lock:
            if self._speeds is None:
                self._speeds = SpeedBook(gpu=device.is_cuda)
            return self._speeds

    # --- Models ----------------------------------------------------------------------

    @property
    def threads(self) -> StageThreads:
        """CPU threads per stage, from the engine's options (`options.stage_threads`).

        Decided by the engine's mode, not each job's: a job that runs sequentially in an
        overlapping engine (one that pauses for review) keeps the overlap split rather
        than loading a second copy of each model.
        """
        return stage_threads(self.options)

    def asr_model(self) -> Resident:
        name, device, threads = self.settings.asr_model, self.device, self.threads.asr
        return self.models.get(("asr", name, device.name, f"threads-{threads}"),
                               lambda: load_whisper(name, device, offline=self.settings.offline,
                                                    cpu_threads=threads))

    def voice(self, language: str) -> Resident:
        name = voice_name(self.settings.tts_voices, self.settings.tts_fallback_voice, language)
        device = self.device
        return self.models.get(("tts", name, device.name), lambda: load_voice(
            name, device, offline=self.settings.offline))

    def voice_replica(self, language: str, replica: int) -> Resident:
        """Instance `replica` of the language's voice; 0 is `voice(language)` itself.

        Each voice worker of an overlapped job has its own instance, so workers don't
        queue on one model's lock.
        """
        if replica == 0:
            return self.voice(language)
        name = voice_name(self.settings.tts_voices, self.settings.tts_fallback_voice, language)
        device = self.device
        return self.models.get(("tts", name, device.name, f"replica-{replica}"),
                               lambda: load_voice(name, device, offline=self.settings.offline))

    def translator(self, source: str, target: str) -> Resident:
        """The pair's MarianMT model when it exists, else the many-to-many fallback."""
        known = self._pair_models.get((source, target))
        if known is not None:
            return self._translator(known, "translation_model")
        primary = pair_model_name(self.settings.translation_model, source, target)
        try:
            resident = self._translator(primary, "translation_model")
        except EngineError as first:
            if first.reason != Reason.MODEL_MISSING:
                raise
            fallback = self.settings.translation_fallback_model
            nllb_code(source), nllb_code(target)  # unsupported pairs fail before a load
            try:
                resident = self._translator(fallback, "translation_fallback_model")
            except EngineError as second:
                raise EngineError(
                    f"No translation model for {source}→{target}: neither '{primary}' nor "
                    f"the fallback '{fallback}' is available. {second.message}",
                    reason=Reason.MODEL_MISSING,
                ) from second
            primary = fallback
        self._pair_models[(source, target)] = primary
        return resident

    def translation_model_name(self, source: str, target: str) -> str | None:
        """The model that translated this pair, once one has."""
        return self._pair_models.get((source, target))

    def _translator(self, name: str, setting: str) -> Resident:
        device = self.device

        backend, threads = self.settings.translation_backend, self.threads.translation

        def load() -> Any:
            return load_translator(
                name, device, offline=self.settings.offline, setting=setting, backend=backend,
                cache_root=self.settings.data_dir / "models" / "ctranslate2",
                compute_type=self.options.translation_compute_type, cpu_threads=threads)

        return self.models.get(("translation", name, device.name, backend,
                                f"threads-{threads}"), load)

    def separator(self) -> Resident:
        name, device = self.settings.separation_model or "", self.device
        return self.models.get(("separation", name, device.name), lambda: load_separator(
            name, device, offline=self.settings.offline))
