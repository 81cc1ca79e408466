"""Benchmark the dubbing pipeline and the libraries under it; prints tables.

    .venv/bin/python bench/pipeline.py                       # tiny test models, espeak input
    .venv/bin/python bench/pipeline.py --only stages,overlap # just the job timings
    .venv/bin/python bench/pipeline.py --asr small --translation Helsinki-NLP/opus-mt-{src}-{tgt} \
        --voice tts_models/es/css10/vits --input talk.mp4 --online

Sections (`--only` picks some):
- stages: per-stage wall time, RTF and peak RSS of a sequential job, cold (loads every
  model) then warm. RTF is wall time over media duration: below 1 beats real time.
- overlap: the same warm job sequential vs overlapped, alternating, best of `--repeats`.
- translation: transformers vs CTranslate2 tokens/s on the job's Marian model and on a
  random model of OPUS-MT's size (what the real model costs per token).
- whisper: transformers' Whisper vs faster-whisper on one random tiny.en-shaped model.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


SECTIONS = ("stages", "overlap", "translation", "whisper")


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
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side")
    parser.add_argument("--sentences", type=int, default=16, help="sentences to translate")
    parser.add_argument("--tts-workers", type=int, default=1, help="voice workers (overlap)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections: {', '.join(SECTIONS)}")
    args = parser.parse_args()
    sections = set(args.only.split(","))

    from server.pipeline.media import probe

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="octavia-bench-") as tmp:
        root = Path(tmp)
        media = args.input or make_input(root, args.seconds)
        duration = probe(media).duration_seconds
        voice = args.voice or str(_tiny_models.build_tiny_vits(root / "vits"))
        marian = args.translation or str(
            _tiny_models.build_tiny_marian(root / "marian", args.source, args.target))
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=root / "data", offline=not args.online, device=args.device,
            asr_model=args.asr or str(_tiny_models.whisper_tiny_en()),
            translation_model=marian, tts_voices={args.target: voice},
            tts_fallback_voice=voice, max_media_seconds=max(duration + 1, 60))
        print(f"input: {media.name}, {duration:.1f} s; asr={Path(settings.asr_model).name}, "
              f"translation={Path(marian).name}, voice={Path(voice).name}")
        if sections & {"stages", "overlap"}:
            jobs(settings, media, duration, args, sections)
        if "translation" in sections:
            translations(root, Path(marian) if not args.translation else None,
                         args.sentences, args.repeats)
        if "whisper" in sections:
            whispers(root, media, args.repeats)


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}"


def run_job(engine: Any, media: Path, name: str, root: Path, sampler: PeakSampler,
            target: str, source: str) -> tuple[float, TimingContext]:
    out = root / f"out-{name}"
    out.mkdir()
    context = TimingContext(sampler, out)
    job = JobSpec(job_id=name, media_path=media, filename=media.name, target_language=target,
                  source_language=source, workdir=root / f"work-{name}")
    started = time.perf_counter()
    engine.run(job, context)
    context.done()
    return time.perf_counter() - started, context


def jobs(settings: Settings, media: Path, duration: float, args: argparse.Namespace,
         sections: set[str]) -> None:
    from server.pipeline import DubbingEngine, PipelineOptions

    sequential = PipelineOptions(overlap=False)
    overlapped = PipelineOptions(overlap=True, tts_workers=args.tts_workers)
    engine = DubbingEngine(settings, sequential)
    sampler = PeakSampler()
    root = settings.data_dir.parent
    rows = []
    for run in ("cold", "warm"):
        total, context = run_job(engine, media, run, root, sampler, args.target, args.source)
        rows += [(run, phase.value, seconds, peak) for phase, seconds, peak in context.stages]
        rows.append((run, "total", total, max(p for *_, p in context.stages)))
    if "stages" in sections:
        print("\nSequential job, per stage (cold loads every model, warm reuses them)")
        print(f"{'run':<6}{'stage':<14}{'seconds':>9}{'RTF':>8}{'peak RSS MB':>13}")
        for run, stage, seconds, peak in rows:
            print(f"{run:<6}{stage:<14}{seconds:>9.2f}{seconds / duration:>8.3f}"
                  f"{peak / 2**20:>13.0f}")
    if "overlap" in sections:
        engine.options = overlapped  # warm the voice replicas, then time both alternately
        run_job(engine, media, "warm-overlap", root, sampler, args.target, args.source)
        best: dict[str, list[float]] = {"sequential": [], "overlapped": []}
        for index in range(args.repeats):
            for name, options in (("sequential", sequential), ("overlapped", overlapped)):
                engine.options = options
                seconds, _ = run_job(engine, media, f"{name}-{index}", root, sampler,
                                     args.target, args.source)
                best[name].append(seconds)
        print(f"\nWarm job end to end, sequential vs overlapped ({args.repeats} runs each, "
              f"alternating; tts_workers={args.tts_workers})")
        print(f"{'mode':<12}{'best s':>8}{'median s':>10}{'RTF':>8}{'speed-up':>10}")
        base = min(best["sequential"])
        for name, times in best.items():
            print(f"{name:<12}{min(times):>8.2f}{statistics.median(times):>10.2f}"
                  f"{min(times) / duration:>8.3f}{base / min(times):>9.2f}x")
    sampler.close()
    engine.close()


def translations(root: Path, tiny: Path | None, count: int, repeats: int) -> None:
    from bench import _compare

    texts = [SENTENCES[i % len(SENTENCES)] + f" Line {i}." for i in range(count)]
    models = {} if tiny is None else {"tiny Marian (d16, 1 layer)": tiny}
    models["OPUS-MT-sized random Marian"] = _tiny_models.build_tiny_marian(
        root / "marian-opus", opus_sized=True)
    print(f"\nTranslation, {len(texts)} sentences, batch 8, beam 4, CPU")
    print(f"{'model':<30}{'backend':<20}{'seconds':>9}{'tokens':>8}{'tokens/s':>10}{'vs ref':>8}")
    for label, folder in models.items():
        speeds = _compare.translation(folder, texts, cache=root / "ct2-cache",
                                      repeats=repeats)
        reference = speeds[0].tokens_per_second
        for speed in speeds:
            print(f"{label:<30}{speed.name:<20}{speed.seconds:>9.2f}{speed.tokens:>8}"
                  f"{speed.tokens_per_second:>10.0f}{speed.tokens_per_second / reference:>7.2f}x")


def whispers(root: Path, media: Path, repeats: int) -> None:
    from bench import _compare
    from server.pipeline.media import decode_audio

    audio = decode_audio(media)[: 16_000 * 60]
    speeds = _compare.whisper(root / "whisper-pair", audio, repeats=repeats)
    print(f"\nWhisper, random tiny.en-shaped model, {audio.size / 16_000:.0f} s in 30 s "
          "windows, greedy, no timestamps, <= 96 tokens a window")
    print(f"{'implementation':<22}{'seconds':>9}{'tokens':>8}{'tokens/s':>10}{'vs ref':>8}")
    reference = speeds[0].tokens_per_second
    for speed in speeds:
        print(f"{speed.name:<22}{speed.seconds:>9.2f}{speed.tokens:>8}"
              f"{speed.tokens_per_second:>10.0f}{speed.tokens_per_second / reference:>7.2f}x")


if __name__ == "__main__":
    main()
