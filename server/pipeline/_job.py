"""One dubbing job, reporting to its JobContext.

By default transcription, translation and synthesis overlap (`_overlap`, progress as
`_progress` describes); `PipelineOptions(overlap=False)` runs them one after the other,
the reference the benchmark compares against. Mixing and encoding follow either way.

Every stage checks for cancellation between its units of work (segments, batches,
files). Results are written to the job's workdir first and handed to the artifact
writer only once all of them are complete, so no half-written artifact is reported.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from octavia.errors import Reason

from ..engine import ArtifactInfo, EngineError, JobCancelled, JobContext, JobResult, JobSpec
from ..jobs import MixMode, Phase
from ._audio import resample
from ._overlap import Overlap, Speak, Translate
from ._progress import ProgressBoard
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
from .transcribe import Segment, Transcript, stream, transcribe
from .translate import translate_all

if TYPE_CHECKING:
    from .engine import DubbingEngine

log = logging.getLogger(__name__)

ETA_INTERVAL = 1.0


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

    def run(self) -> JobResult:
        require_separation(self.job.mix_mode, self.engine.settings.separation_model)
        self.job.workdir.mkdir(parents=True, exist_ok=True)
        self.context.enter(Phase.TRANSCRIBING, "Reading the media")
        with self._stage("reading the media"):
            info = probe(self.job.media_path, max_seconds=self.engine.settings.max_media_seconds)
            self.context.update(media_duration_seconds=info.duration_seconds)
            audio = self._decode(info)
            ensure_audible(audio)
        self.context.check_cancelled()
        if self.options.overlap:
            return self._finish(info, *self._overlapped(audio))
        self.clock = JobClock(self.engine.speeds, info.duration_seconds)
        self._report_eta(0.0, force=True)
        transcript = self._transcribe(audio)
        del audio
        source = self.job.source_language or transcript.language
        if self.job.source_language is None:
            self.context.update(source_language=source)
        self._translate(transcript, source)
        lines, voice_name = self._synthesize(transcript)
        return self._finish(info, transcript, source, lines, voice_name)

    def _decode(self, info: MediaInfo) -> np.ndarray:
        """The ASR audio; short media is decoded once for the mix too, in the same pass."""
        if info.duration_seconds > self.options.decode_once_max_seconds:
            return decode_audio(self.job.media_path, ASR_SAMPLE_RATE)
        audio, self._original = decode_audio_at(
            self.job.media_path, (ASR_SAMPLE_RATE, self.options.mix_sample_rate))
        return audio

    # --- Overlapped stages -----------------------------------------------------------

    def _overlapped(self, audio: np.ndarray) -> tuple[Transcript, str, list[DubbedLine], str]:
        self.context.progress(0.0, "Loading the speech recognition model")
        with self._stage("transcription"):
            started = stream(self.engine.asr_model().model, audio,
                             language=self.job.source_language, options=self.options)
        del audio
        source = self.job.source_language or started.language
        if self.job.source_language is None:
            self.context.update(source_language=source)
        target = self.job.target_language
        voices: list[Resident] = []

        def load_translate() -> Translate | None:
            if source == target:
                return None
            resident = self.engine.translator(source, target)

            def translate(texts: list[str]) -> list[str]:
                with resident.lock:
                    return resident.model.translate(  # type: ignore[no-any-return]
                        texts, source, target, beams=self.options.translation_beams)

            return translate

        def load_speaker(replica: int) -> Speak:
            resident = self.engine.voice_replica(target, replica)
            voices.append(resident)
            return lambda text: self._speak(resident, text)

        board = ProgressBoard(self.context, self.engine.speeds, started.duration)
        done = Overlap(
            started, load_translate=load_translate,
            load_speakers=[lambda i=i: load_speaker(i)
                           for i in range(max(self.options.tts_workers, 1))],
            board=board, guard=self._stage, check_cancelled=self.context.check_cancelled,
            batch_size=self.options.translation_batch_size,
            queue_size=self.options.overlap_queue_size).run()
        board.complete()
        for stage, busy in done.busy.items():
            self.engine.speeds.record(stage, started.duration, busy)
        transcript = Transcript(started.language, started.language_probability,
                                started.duration, done.segments)
        lines = [self._fit(transcript, index, speech)
                 for index, speech in enumerate(done.speech)]
        return transcript, source, lines, str(voices[0].model.name)

    def _speak(self, resident: Resident, text: str) -> np.ndarray:
        with resident.lock:
            speech = resident.model.speak(text, self.job.target_language)
        return resample(speech, resident.model.sample_rate, self.options.mix_sample_rate)

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
        self.context.progress(1.0, f"Transcribed {len(transcript.segments)} segments")
        return transcript

    def _translate(self, transcript: Transcript, source: str) -> None:
        target = self.job.target_language
        segments = transcript.segments
        self.context.enter(Phase.TRANSLATING, f"Translating {source} → {target}")
        self._finish_clock("translate")
        if source == target:
            for segment in segments:
                segment.translation = segment.text
            self.context.progress(1.0, "Source and target language match: nothing to translate")
            return
        with self._stage("translation"):
            resident = self.engine.translator(source, target)
            self._start_clock("translate")

            def translate_batch(texts: Sequence[str]) -> list[str]:
                with resident.lock:
                    return resident.model.translate(  # type: ignore[no-any-return]
                        texts, source, target, beams=self.options.translation_beams)

            def on_batch(done: int) -> None:
                self.context.progress(done / len(segments),
                                      f"Translated {done} of {len(segments)} segments")
                self._report_eta(done / len(segments))
                self.context.check_cancelled()

            texts = translate_all(translate_batch, [s.text for s in segments],
                                  batch_size=self.options.translation_batch_size,
                                  on_batch=on_batch)
        for segment, text in zip(segments, texts, strict=True):
            segment.translation = text

    def _synthesize(self, transcript: Transcript) -> tuple[list[DubbedLine], str]:
        segments = transcript.segments
        self.context.enter(Phase.SYNTHESIZING, "Loading the voice")
        self._finish_clock("synthesize")
        lines: list[DubbedLine] = []
        with self._stage("speech synthesis"):
            resident = self.engine.voice(self.job.target_language)
            self._start_clock("synthesize")
            for index, segment in enumerate(segments):
                self.context.check_cancelled()
                lines.append(self._fit(transcript, index, self._speak(resident,
                                                                      segment.translation)))
                fraction = (index + 1) / len(segments)
                self.context.progress(fraction, f"Voiced {index + 1} of {len(segments)} segments")
                self._report_eta(fraction)
        return lines, str(resident.model.name)

    def _finish(self, info: MediaInfo, transcript: Transcript, source: str,
                lines: list[DubbedLine], voice: str) -> JobResult:
        self.context.enter(Phase.UPLOADING, "Mixing the dub")
        if self.options.overlap:  # the overlapped stages recorded their own speeds
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
                self.job, transcript, source, lines, asr=self.engine.settings.asr_model,
                translation=self.engine.translation_model_name(source, self.job.target_language),
                tts=voice, device=self.engine.device.name)
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
            log.exception("job %s: %s failed", self.job.job_id, name)
            raise EngineError(f"The {name} stage failed: {type(exc).__name__}: {exc}",
                              reason=Reason.STAGE_FAILED) from exc

    def _start_clock(self, stage: str) -> None:
        if self.clock is not None:
            self.clock.start(stage)

    def _finish_clock(self, next_stage: str) -> None:
        if self.clock is not None:
            self.clock.finish()
            self.clock.start(next_stage)

    def _report_eta(self, fraction: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.clock is None or (not force and now - self._eta_sent < ETA_INTERVAL):
            return
        self._eta_sent = now
        self.context.update(eta_seconds=self.clock.eta(fraction))
