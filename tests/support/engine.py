"""A scripted engine for orchestration tests: the real phases, no ML, timing under control."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from server.engine import Checkpoints, EngineError, JobContext, JobPaused, JobResult, JobSpec
from server.jobs import RUNNING_PHASES, Phase


@dataclass
class ScriptedEngine:
    ticks: int = 3
    """Progress reports per phase."""
    delay: float = 0.0
    """Seconds slept before each progress report."""
    fail_in: Phase | None = None
    error: Exception = field(default_factory=lambda: EngineError("scripted failure"))
    hold: threading.Event | None = None
    """When set, each job waits (checking for cancel) until the event is set before a phase."""
    stamp_steps: bool = False
    """Append the wall-clock time of each report to its step text (` t=<epoch seconds>`)."""
    lines: tuple[tuple[float, float, str, str], ...] = ()
    """(start, end, source text, target text) per segment: when given, transcribing and
    translating save them as the real stages' checkpoints, so review has segments."""
    started: list[str] = field(default_factory=list)
    closed: bool = False

    def run(self, job: JobSpec, context: JobContext) -> JobResult:
        self.started.append(job.job_id)
        checkpoints = context.checkpoints()
        for phase in RUNNING_PHASES:
            if checkpoints.load(f"{phase.value}.done") is not None:
                # A previous run finished this stage: entered, as the real engine does,
                # but nothing is redone.
                context.enter(phase, f"{phase.value.capitalize()}")
                continue
            if self.hold is not None:
                while not self.hold.wait(0.01):
                    context.check_cancelled()
            context.enter(phase, f"{phase.value.capitalize()}")
            if phase == self.fail_in:
                raise self.error
            if phase == Phase.TRANSCRIBING and job.source_language is None:
                context.update(source_language="en")
            for tick in range(1, self.ticks + 1):
                if self.delay:
                    time.sleep(self.delay)
                step = f"{phase.value} {tick}/{self.ticks}"
                if self.stamp_steps:
                    step += f" t={time.time():.6f}"
                context.progress(tick / self.ticks, step)
            if self.lines:
                _save_lines(checkpoints, job, phase, self.lines)
            checkpoints.save(f"{phase.value}.done", b"1")
            if phase in job.pause_after:
                raise JobPaused(phase)
        writer = context.artifact_writer()
        audio = writer.put_file("dubbed.wav", job.media_path, "audio/wav")
        subtitles = writer.put_bytes("target.srt", b"1\n00:00:00,000 --> 00:00:01,000\nhola\n",
                                     "application/x-subrip")
        return JobResult(artifacts=[audio, subtitles], output_file=audio.name)

    def close(self) -> None:
        self.closed = True


def _save_lines(checkpoints: Checkpoints, job: JobSpec, phase: Phase,
                lines: tuple[tuple[float, float, str, str], ...]) -> None:
    from server.pipeline.checkpoints import StageCheckpoints
    from server.pipeline.transcribe import Segment, Transcript

    saved = StageCheckpoints(checkpoints, job.job_id, strict=True)
    source = job.source_language or "en"
    segments = [Segment(start, end, text, translation=translation)
                for start, end, text, translation in lines]
    if phase == Phase.TRANSCRIBING:
        from server.pipeline.media import probe

        duration = probe(job.media_path).duration_seconds
        saved.save_transcript(Transcript(source, 1.0, duration, segments),
                              job.source_language, "scripted")
    elif phase == Phase.TRANSLATING:
        saved.save_translations(segments, source, job.target_language, "scripted")


def scripted(settings: object) -> ScriptedEngine:
    """Engine factory for subprocesses (`OCTAVIA_ENGINE=tests.support.engine:scripted`);
    `OCTAVIA_SCRIPTED_DELAY` and `OCTAVIA_SCRIPTED_TICKS` set its pace,
    `OCTAVIA_SCRIPTED_STAMP=1` stamps its steps with the time."""
    import os

    return ScriptedEngine(
        ticks=int(os.environ.get("OCTAVIA_SCRIPTED_TICKS", "3")),
        delay=float(os.environ.get("OCTAVIA_SCRIPTED_DELAY", "0")),
        stamp_steps=os.environ.get("OCTAVIA_SCRIPTED_STAMP") == "1",
    )
