"""Benchmark the dubbing pipeline: real-time factor and peak memory per stage, cold vs warm.

    .venv/bin/python bench/pipeline.py                       # tiny test models, espeak input
    .venv/bin/python bench/pipeline.py --asr small --translation Helsinki-NLP/opus-mt-{src}-{tgt} \
        --voice tts_models/es/css10/vits --input talk.mp4

The first job loads every model (cold); the second reuses them (warm). RTF is stage
wall time divided by the media's duration: below 1 is faster than real time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _media, _tiny_models
from server.engine import ArtifactInfo, JobSpec
from server.jobs import Phase
from server.settings import Settings

SENTENCES = [
    "Good morning and welcome to this short presentation about automatic dubbing.",
    "First we transcribe the speech, then we translate every sentence.",
    "Finally a synthetic voice reads the translation in the time of the original line.",
]


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class PeakSampler:
    """Samples this process's RSS every few milliseconds; `take()` returns and resets the peak."""

    def __init__(self, interval: float = 0.02) -> None:
        self._peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._peak = max(self._peak, rss_bytes())

    def take(self) -> int:
        peak, self._peak = max(self._peak, rss_bytes()), rss_bytes()
        return peak

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class TimingContext:
    """A JobContext that times phases and records each phase's peak RSS."""

    sampler: PeakSampler
    folder: Path
    stages: list[tuple[Phase, float, int]] = field(default_factory=list)
    _phase: Phase | None = None
    _started: float = 0.0

    def enter(self, phase: Phase, step: str) -> None:
        self._close_phase()
        self._phase, self._started = phase, time.perf_counter()

    def progress(self, fraction: float, step: str) -> None:
        pass

    def update(self, **facts: object) -> None:
        pass

    def check_cancelled(self) -> None:
        pass

    def artifact_writer(self) -> TimingContext:
        return self

    def put_file(self, name: str, path: Path, media_type: str) -> ArtifactInfo:
        data = path.read_bytes()
        (self.folder / name).write_bytes(data)
        return ArtifactInfo(name, media_type, len(data), "")

    def put_bytes(self, name: str, data: bytes, media_type: str) -> ArtifactInfo:
        (self.folder / name).write_bytes(data)
        return ArtifactInfo(name, media_type, len(data), "")

    def _close_phase(self) -> None:
        if self._phase is not None:
            self.stages.append((self._phase, time.perf_counter() - self._started,
                                self.sampler.take()))
            self._phase = None

    def done(self) -> None:
        self._close_phase()


def make_input(folder: Path, seconds: float) -> Path:
    """Espeak sentences, one every few seconds, for `seconds` of audio."""
    rate = 22_050
    clips = [_media.read_wav(_tiny_models.espeak(text, folder / f"s{i}.wav"), rate)
             for i, text in enumerate(SENTENCES)]
    track = np.zeros(int(seconds * rate), np.float32)
    at, index = int(0.5 * rate), 0
    while at < track.size:
        clip = clips[index % len(clips)][: track.size - at]
        track[at:at + clip.size] = clip
        at += clip.size + int(1.0 * rate)
        index += 1
    return _media.write_media(folder / "input.wav", track, rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, help="media to dub (default: generated speech)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of generated input")
    parser.add_argument("--asr", help="faster-whisper model (default: tiny.en from PyPI)")
    parser.add_argument("--translation", help="Marian/NLLB model or template "
                        "(default: a tiny random MarianMT)")
    parser.add_argument("--voice", help="Coqui voice (default: a tiny random VITS)")
    parser.add_argument("--source", default="en")
    parser.add_argument("--target", default="es")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--online", action="store_true", help="allow model downloads")
    args = parser.parse_args()

    from server.pipeline import DubbingEngine, PipelineOptions
    from server.pipeline.media import probe

    with tempfile.TemporaryDirectory(prefix="octavia-bench-") as tmp:
        root = Path(tmp)
        media = args.input or make_input(root, args.seconds)
        duration = probe(media).duration_seconds
        voice = args.voice or str(_tiny_models.build_tiny_vits(root / "vits"))
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=root / "data", offline=not args.online, device=args.device,
            asr_model=args.asr or str(_tiny_models.whisper_tiny_en()),
            translation_model=args.translation
            or str(_tiny_models.build_tiny_marian(root / "marian", args.source, args.target)),
            tts_voices={args.target: voice}, tts_fallback_voice=voice,
            max_media_seconds=max(duration + 1, 60))
        engine = DubbingEngine(settings, PipelineOptions())
        sampler = PeakSampler()
        rows = []
        for run in ("cold", "warm"):
            out = root / f"out-{run}"
            out.mkdir()
            context = TimingContext(sampler, out)
            job = JobSpec(job_id=run, media_path=media, filename=media.name,
                          target_language=args.target, source_language=args.source,
                          workdir=root / f"work-{run}")
            started = time.perf_counter()
            engine.run(job, context)  # type: ignore[arg-type]
            context.done()
            total = time.perf_counter() - started
            rows += [(run, phase.value, seconds, peak) for phase, seconds, peak in context.stages]
            rows.append((run, "total", total, max(p for *_, p in context.stages)))
        sampler.close()
        engine.close()

    print(f"\ninput: {media.name}, {duration:.1f} s; asr={settings.asr_model}")
    print(f"{'run':<6}{'stage':<14}{'seconds':>9}{'RTF':>8}{'peak RSS MB':>13}")
    for run, stage, seconds, peak in rows:
        print(f"{run:<6}{stage:<14}{seconds:>9.2f}{seconds / duration:>8.3f}"
              f"{peak / 2**20:>13.0f}")


if __name__ == "__main__":
    main()
