"""One dubbing job, reporting to its JobContext.

By default transcription, translation and synthesis overlap (`_overlap`, progress as
`_progress` describes); `PipelineOptions(overlap=False)` runs them one after the other,
the reference the benchmark compares against. Mixing and encoding follow either way.

Every stage checks for cancellation between its units of work (segments, batches,
files). Results are written to the job's workdir first and handed to the artifact
writer only once all of them are complete, so no half-written artifact is reported.

Each stage saves its output as a job checkpoint and, when the job runs again (its worker
died), loads what exists and computes only what is missing (`checkpoints`). A stage
whose output is all saved loads no model; its phase is still entered and completed, and
the runner does not announce a phase twice. A resumed stage's speed is not recorded.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np
from octavia.errors import Reason

from ..engine import (
    ArtifactInfo,
    EngineError,
    JobCancelled,
    JobContext,
    JobPaused,
    JobResult,
    JobSpec,
)
from ..faults import is_disk_full
from ..jobs import MixMode, Phase
from ._audio import resample
from ._overlap import Overlap, Speak, Translate
from ._progress import ProgressBoard
from .checkpoints import CachedTranscript, Speech, StageCheckpoints, Translations, speech_key
from .eta import JobClock
from .fit import DubbedLine, fit_to_slot
from .media import (
    ASR_SAMPLE_RATE,
    MediaInfo,
    decode_audio,
    decode_audio_at,
    ensure_audible,
    format_clock,
    probe,
)
from .mix import mix, place, require_separation, separate_background
from .models import Resident, is_out_of_memory
from .outputs import VIDEO_MEDIA_TYPES, mux_video, video_suffix, write_m4a, write_wav
from .report import transcript_document, write_subtitles
from .synthesize import torch_threads, voice_name
from .transcribe import Segment, Transcript, TranscriptStream, stream, transcribe
from .translate import translate_all

if TYPE_CHECKING:
    from .engine import DubbingEngine

log = logging.getLogger(__name__)

ETA_INTERVAL = 1.0

T = TypeVar("T")


class _Lazy(Generic[T]):
    """A value loaded on first use (a model a resumed job may not need at all)."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._load()
            return self._value


class DubbingJob:
    def __init__(self, engine: DubbingEngine, job: JobSpec, context: JobContext) -> None:
        self.engine = engine
        self.options = engine.options
        self.job = job
        self.context = context
        self.clock: JobClock | None = None
        self._eta_sent = 0.0
        self._original: np.ndarray | None = None
        """The media at the mix rate, when it was decoded along with the ASR audio."""
        settings = engine.settings
        self.saved = StageCheckpoints.of(context, job.job_id)
        self.overlap = self.options.overlap and not job.pause_after
        """Overlapped stages have no point between them to pause at: a job that will
        pause for review runs its stages one after the other."""
        self._asr_name = settings.asr_model
        """The speech recognition model that made the transcript (a saved one's, if reused)."""
        self._translation_model: str | None = None
        self._voice = voice_name(settings.tts_voices, settings.tts_fallback_voice,
                                 job.target_language)
        self._reused_stage = False
        """The sequential stage under way reused saved work: its speed is not recorded."""

    @property
    def work(self) -> dict[str, int]:
        """What this job computed and what it reused from checkpoints (see `checkpoints`)."""
        return dict(self.saved.work)

    def run(self) -> JobResult:
        try:
            return self._run()
        finally:
            self.engine.record_work(self.saved.work)
            log.info("job %s: stage work %s", self.job.job_id, dict(self.saved.work))

    def _run(self) -> JobResult:
        require_separation(self.job.mix_mode, self.engine.settings.separation_model)
        self.job.workdir.mkdir(parents=True, exist_ok=True)
        self.context.enter(Phase.TRANSCRIBING, "Reading the media")
        cached = self.saved.load_transcript(self.job.source_language)
        audio: np.ndarray | None = None
        with self._stage("reading the media"):
            info = probe(self.job.media_path, max_seconds=self.engine.settings.max_media_seconds)
            self.context.update(media_duration_seconds=info.duration_seconds)
            if cached is None:  # a saved transcript needs no ASR audio
                audio = self._decode(info)
                ensure_audible(audio)
        self.context.check_cancelled()
        if cached is not None:
            self.saved.count("transcript_reused")
            self._asr_name = cached.asr_model or self._asr_name
        if self.overlap:
            return self._finish(info, *self._overlapped(audio, cached))
        self.clock = JobClock(self.engine.speeds, info.duration_seconds)
        self._report_eta(0.0, force=True)
        if cached is None:
            assert audio is not None
            transcript = self._transcribe(audio)
        else:
            transcript = cached.transcript
            self._reused_stage = True
            self.context.progress(1.0, f"Reused the transcript of {len(transcript.segments)} "
                                       "segments")
        del audio
        source = self.job.source_language or transcript.language
        if self.job.source_language is None:
            self.context.update(source_language=source)
        self._pause_after(Phase.TRANSCRIBING)
        self._translate(transcript, source)
        self._pause_after(Phase.TRANSLATING)
        lines, voice = self._synthesize(transcript, eager=cached is None)
        return self._finish(info, transcript, source, lines, voice)

    def _decode(self, info: MediaInfo) -> np.ndarray:
        """The ASR audio; short media is decoded once for the mix too, in the same pass."""
        if info.duration_seconds > self.options.decode_once_max_seconds:
            return decode_audio(self.job.media_path, ASR_SAMPLE_RATE)
        audio, self._original = decode_audio_at(
            self.job.media_path, (ASR_SAMPLE_RATE, self.options.mix_sample_rate))
        return audio

    # --- Overlapped stages -----------------------------------------------------------

    def _overlapped(self, audio: np.ndarray | None, cached: CachedTranscript | None,
                    ) -> tuple[Transcript, str, list[DubbedLine], str]:
        """The three stages at once; a saved transcript is replayed instead of decoded.

        A fresh job loads the translation and voice models while Whisper decodes; a
        resumed one loads them only once a segment needs them.
        """
        resume = cached is not None
        if cached is None:
            assert audio is not None
            self.context.progress(0.0, "Loading the speech recognition model")
            with self._stage("transcription"):
                started = stream(self.engine.asr_model().model, audio,
                                 language=self.job.source_language, options=self.options)
        else:
            saved = cached.transcript
            started = TranscriptStream(saved.language, saved.language_probability,
                                       saved.duration,
                                       iter([(s, s.end) for s in saved.segments]))
        del audio
        source = self.job.source_language or started.language
        if self.job.source_language is None:
            self.context.update(source_language=source)
        target = self.job.target_language
        translations = self.saved.load_translations(source, target)

        def load_translate() -> Translate | None:
            if source == target:
                return None
            translator = _Lazy(lambda: self.engine.translator(source, target))
            if not resume:
                translator()

            def translate(texts: list[str]) -> list[str]:
                resident = translator()
                with resident.lock:
                    out: list[str] = resident.model.translate(
                        texts, source, target, beams=self.options.translation_beams)
                self.saved.count("translated", len(texts))
                return out

            return translate

        def reuse_translation(index: int, segment: Segment) -> str | None:
            text = translations.get(index, segment)
            if text is not None:
                self.saved.count("translation_reused")
            return text

        transcribed = threading.Event()

        def on_transcribed(segments: list[Segment]) -> None:
            transcribed.set()
            if not resume:
                self.saved.count("transcribed")
                self.saved.save_transcript(
                    Transcript(started.language, started.language_probability,
                               started.duration, segments),
                    self.job.source_language, self._asr_name)

        def on_translated(segments: list[Segment]) -> None:
            self._save_translations(segments, source, translations)

        def load_speaker(replica: int) -> Speak:
            voice = _Lazy(lambda: self.engine.voice_replica(target, replica))
            if not resume:
                voice()

            def speak(index: int, text: str) -> np.ndarray:
                threads = self.engine.threads
                return self._voice_line(index, text, voice, threads.tts_alone
                                        if transcribed.is_set() else threads.tts)

            return speak

        board = ProgressBoard(self.context, self.engine.speeds, started.duration)
        done = Overlap(
            started, load_translate=load_translate,
            load_speakers=[functools.partial(load_speaker, i)
                           for i in range(max(self.options.tts_workers, 1))],
            board=board, guard=self._stage, check_cancelled=self.context.check_cancelled,
            batch_size=self.options.translation_batch_size,
            queue_size=self.options.overlap_queue_size, reuse_translation=reuse_translation,
            on_transcribed=on_transcribed, on_translated=on_translated).run()
        board.complete()
        reused = {"transcribe": resume, "translate": self.saved.work["translation_reused"] > 0,
                  "synthesize": self.saved.work["speech_reused"] > 0}
        for stage, busy in done.busy.items():
            if not reused[stage]:  # a partly resumed stage would look far too fast
                self.engine.speeds.record(stage, started.duration, busy)
        transcript = Transcript(started.language, started.language_probability,
                                started.duration, done.segments)
        lines = [self._fit(transcript, index, speech)
                 for index, speech in enumerate(done.speech)]
        return transcript, source, lines, self._voice

    def _voice_line(self, index: int, text: str, voice: Callable[[], Resident],
                    threads: int) -> np.ndarray:
        """Segment `index`'s speech at the mix rate: the saved line if its key matches.

        `threads` is torch's thread count for this line (0 leaves it as it is).
        """
        target = self.job.target_language
        key = speech_key(text, self._voice, target)
        saved = self.saved.load_speech(index, key)
        if saved is not None:
            self.saved.count("speech_reused")
            return resample(saved.samples, saved.sample_rate, self.options.mix_sample_rate)
        resident = voice()
        with resident.lock, torch_threads(threads):
            speech = resident.model.speak(text, target)
        rate = int(resident.model.sample_rate)
        self.saved.count("voiced")
        self.saved.save_speech(index, key, Speech(speech, rate))
        return resample(speech, rate, self.options.mix_sample_rate)

    def _save_translations(self, segments: Sequence[Segment], source: str,
                           saved: Translations) -> None:
        """Save the target texts unless all of them were loaded; note the model used."""
        target = self.job.target_language
        if source != target:
            translated = self.saved.work["translated"] > 0
            self._translation_model = (
                (self.engine.translation_model_name(source, target) if translated else None)
                or saved.model or self.engine.translation_model_name(source, target))
        if self.saved.work["translation_reused"] < len(segments):
            self.saved.save_translations(segments, source, target, self._translation_model)

    def _fit(self, transcript: Transcript, index: int, speech: np.ndarray) -> DubbedLine:
        """Fit a voiced line into its slot; it may spill into the pause before the next."""
        segments: list[Segment] = transcript.segments
        segment = segments[index]
        following = (segments[index + 1].start if index + 1 < len(segments)
                     else transcript.duration)
        rate = self.options.mix_sample_rate
        fit = fit_to_slot(speech, rate, slot_seconds=segment.duration,
                          room_seconds=following - segment.start,
                          min_rate=self.options.min_rate, max_rate=self.options.max_rate)
        return DubbedLine(segment.start, fit, rate)

    # --- Stages ----------------------------------------------------------------------

    def _transcribe(self, audio: np.ndarray) -> Transcript:
        duration = audio.size / ASR_SAMPLE_RATE
        self.context.progress(0.0, "Loading the speech recognition model")
        with self._stage("transcription"):
            resident = self.engine.asr_model()
            self._start_clock("transcribe")

            def on_segment(done: float) -> None:
                fraction = done / duration if duration else 1.0
                self.context.progress(fraction, f"Transcribing {format_clock(done)} / "
                                                f"{format_clock(duration)}")
                self._report_eta(fraction)
                self.context.check_cancelled()

            transcript = transcribe(resident.model, audio, language=self.job.source_language,
                                    options=self.options, on_segment=on_segment)
        self.saved.count("transcribed")
        self.saved.save_transcript(transcript, self.job.source_language, self._asr_name)
        self.context.progress(1.0, f"Transcribed {len(transcript.segments)} segments")
        return transcript

    def _translate(self, transcript: Transcript, source: str) -> None:
        target = self.job.target_language
        segments = transcript.segments
        self.context.enter(Phase.TRANSLATING, f"Translating {source} → {target}")
        self._finish_clock("translate")
        saved = self.saved.load_translations(source, target)
        missing: list[int] = []
        for index, segment in enumerate(segments):
            text = saved.get(index, segment)
            if text is None:
                missing.append(index)
            else:
                segment.translation = text
        if len(missing) < len(segments):
            self._reused_stage = True
            self.saved.count("translation_reused", len(segments) - len(missing))
        if source == target:
            for index in missing:
                segments[index].translation = segments[index].text
            self.context.progress(1.0, "Source and target language match: nothing to translate")
        elif not missing:
            self.context.progress(1.0, f"Reused the translations of {len(segments)} segments")
        else:
            with self._stage("translation"):
                resident = self.engine.translator(source, target)
                self._start_clock("translate")

                def translate_batch(texts: Sequence[str]) -> list[str]:
                    with resident.lock:
                        out: list[str] = resident.model.translate(
                            texts, source, target, beams=self.options.translation_beams)
                    self.saved.count("translated", len(texts))
                    return out

                def on_batch(done: int) -> None:
                    fraction = (len(segments) - len(missing) + done) / len(segments)
                    self.context.progress(fraction, f"Translated {done} of {len(missing)} "
                                                    "segments")
                    self._report_eta(fraction)
                    self.context.check_cancelled()

                texts = translate_all(translate_batch, [segments[i].text for i in missing],
                                      batch_size=self.options.translation_batch_size,
                                      on_batch=on_batch)
            for index, text in zip(missing, texts, strict=True):
                segments[index].translation = text
        self._save_translations(segments, source, saved)

    def _synthesize(self, transcript: Transcript, *, eager: bool,
                    ) -> tuple[list[DubbedLine], str]:
        """Voice every segment; `eager` loads the voice up front (a fresh job needs it)."""
        segments = transcript.segments
        self.context.enter(Phase.SYNTHESIZING, "Loading the voice")
        self._finish_clock("synthesize")
        lines: list[DubbedLine] = []
        with self._stage("speech synthesis"):
            voice = _Lazy(lambda: self.engine.voice(self.job.target_language))
            if eager:
                voice()
            self._start_clock("synthesize")
            for index, segment in enumerate(segments):
                self.context.check_cancelled()
                speech = self._voice_line(index, segment.translation, voice,
                                          self.engine.threads.tts_alone)
                lines.append(self._fit(transcript, index, speech))
                fraction = (index + 1) / len(segments)
                self.context.progress(fraction, f"Voiced {index + 1} of {len(segments)} segments")
                self._report_eta(fraction)
        if self.saved.work["speech_reused"]:
            self._reused_stage = True
        return lines, self._voice

    def _finish(self, info: MediaInfo, transcript: Transcript, source: str,
                lines: list[DubbedLine], voice: str) -> JobResult:
        self.context.enter(Phase.UPLOADING, "Mixing the dub")
        if self.overlap:  # the overlapped stages recorded their own speeds
            self.clock = JobClock(self.engine.speeds, info.duration_seconds)
            self.clock.start("finish")
        else:
            self._finish_clock("finish")
        out = self.job.workdir / "out"
        out.mkdir(parents=True, exist_ok=True)
        rate = self.options.mix_sample_rate
        files: list[tuple[str, Path, str]] = []
        with self._stage("mixing and encoding"):
            original = self._original
            self._original = None
            if original is None:
                original = decode_audio(self.job.media_path, rate)
            background = None
            if self.job.mix_mode == MixMode.SEPARATED:
                self.context.progress(0.05, "Separating speech from the background")
                resident = self.engine.separator()
                with resident.lock:
                    background = separate_background(resident.model, original, rate,
                                                     self.engine.device)
            self.context.check_cancelled()
            dub = place([(line.start, line.fit.samples) for line in lines], original.size, rate)
            final = mix(original, dub, mode=self.job.mix_mode,
                        spans=[(line.start, line.end) for line in lines], sample_rate=rate,
                        duck_gain=self.options.duck_gain,
                        ramp_seconds=self.options.duck_ramp_seconds, background=background)
            del original, dub, background
            self.context.progress(0.2, "Encoding the dubbed audio")
            write_wav(out / "dubbed.wav", final, rate)
            files.append(("dubbed.wav", out / "dubbed.wav", "audio/wav"))
            write_m4a(out / "dubbed.m4a", final, rate, self.options.aac_bitrate)
            files.append(("dubbed.m4a", out / "dubbed.m4a", "audio/mp4"))
            self.context.check_cancelled()
            if info.has_video:
                self.context.progress(0.4, "Muxing the dubbed video")
                suffix = video_suffix(info, self.job.filename)
                video = out / f"dubbed{suffix}"
                mux_video(self.job.media_path, final, rate, video, self.options.aac_bitrate)
                files.append((video.name, video, VIDEO_MEDIA_TYPES[suffix]))
            files.extend(write_subtitles(out, transcript, source, self.job.target_language,
                                         lines))
            document = transcript_document(
                self.job, transcript, source, lines, asr=self._asr_name,
                translation=self._translation_model, tts=voice, device=self.engine.device.name)
            path = out / "transcript.json"
            path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
            files.append((path.name, path, "application/json"))
        self.context.check_cancelled()
        artifacts: list[ArtifactInfo] = []
        writer = self.context.artifact_writer()
        with self._stage("storing the results"):
            for index, (name, path, media_type) in enumerate(files):
                self.context.progress(0.6 + 0.4 * index / len(files), f"Storing {name}")
                artifacts.append(writer.put_file(name, path, media_type))
        self.context.progress(1.0, f"Stored {len(artifacts)} files")
        if self.clock is not None:
            self.clock.finish()
        primary = next((a.name for a in artifacts if a.media_type.startswith("video/")),
                       "dubbed.wav")
        return JobResult(artifacts=artifacts, output_file=primary)

    # --- Plumbing --------------------------------------------------------------------

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Turn a library's failure into an EngineError that says which stage broke."""
        try:
            yield
        except (EngineError, JobCancelled):
            raise
        except Exception as exc:
            if is_out_of_memory(exc):
                raise EngineError(
                    f"Ran out of memory during {name}; try a shorter file or a smaller model.",
                    reason=Reason.OUT_OF_MEMORY, retryable=True) from exc
            if is_disk_full(exc):
                raise EngineError(
                    f"The server ran out of disk space during {name}; submit the job "
                    "again later.", reason=Reason.STORAGE_FULL, retryable=True) from exc
            log.exception("job %s: %s failed", self.job.job_id, name)
            raise EngineError(f"The {name} stage failed: {type(exc).__name__}: {exc}",
                              reason=Reason.STAGE_FAILED) from exc

    def _pause_after(self, phase: Phase) -> None:
        """Stop for review once `phase`'s output is saved, if the job asked to."""
        if phase in self.job.pause_after:
            raise JobPaused(phase)

    def _start_clock(self, stage: str) -> None:
        if self.clock is not None:
            self.clock.start(stage)

    def _finish_clock(self, next_stage: str) -> None:
        if self.clock is not None:
            self.clock.finish(record=not self._reused_stage)
            self.clock.start(next_stage)
        self._reused_stage = False

    def _report_eta(self, fraction: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.clock is None or (not force and now - self._eta_sent < ETA_INTERVAL):
            return
        self._eta_sent = now
        self.context.update(eta_seconds=self.clock.eta(fraction))
