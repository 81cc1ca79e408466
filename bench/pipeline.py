"""Benchmark the dubbing pipeline and the libraries under it; prints tables.

    .venv/bin/python bench/pipeline.py                       # tiny test models, espeak input
    .venv/bin/python bench/pipeline.py --only stages,overlap # just the job timings
    .venv/bin/python bench/pipeline.py --asr small --translation Helsinki-NLP/opus-mt-{src}-{tgt} \
        --voice tts_models/es/css10/vits --input talk.mp4 --online

Sections (`--only` picks some):
- stages: per-stage wall time, RTF and peak RSS of a sequential job, cold (loads every
  model) then warm. RTF is wall time over media duration: below 1 beats real time.
- overlap: the same warm job sequential vs overlapped, alternating, best of `--repeats`,
  in two scenarios (`--scenarios`): `tiny` runs the job's models (by default tiny.en and
  near-free random translator and voice); `sized` runs models that cost what production
  ones do: Whisper base, an OPUS-MT-sized Marian and a default-size VITS (random weights,
  see `SizedModels`). Overlapped rows also show the old thread policy (every stage
  with a thread per core) against the engine's split (`options.stage_threads`).
- threads: each stage's library (sized models) on 1 thread vs one per core.
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
class FolderCheckpoints:
    """A job's checkpoints in a local folder: the job pays for saving them, as in service."""

    folder: Path

    def load(self, name: str) -> bytes | None:
        path = self.folder / name
        return path.read_bytes() if path.exists() else None

    def save(self, name: str, data: bytes) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".tmp").write_bytes(data)
        path.with_suffix(".tmp").replace(path)


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

    def checkpoints(self) -> FolderCheckpoints:
        return FolderCheckpoints(self.folder / "checkpoints")

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


SECTIONS = ("stages", "overlap", "threads", "translation", "whisper")


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
    parser.add_argument("--tts-workers", default="1",
                        help="voice workers of the overlapped rows, comma-separated (1,2)")
    parser.add_argument("--scenarios", default="tiny,sized",
                        help="overlap scenarios, comma-separated: tiny, sized")
    parser.add_argument("--sized-asr", default="base",
                        help="Whisper of the sized scenario: base (multilingual, PyPI) or a "
                        "faster-whisper model")
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
            tts_fallback_voice=voice, max_media_seconds=max(duration + 1, 60),
            max_resident_models=16)  # every mode's models stay loaded: no reload is timed
        print(f"input: {media.name}, {duration:.1f} s; asr={Path(settings.asr_model).name}, "
              f"translation={Path(marian).name}, voice={Path(voice).name}")
        if sections & {"stages", "overlap"}:
            jobs(settings, media, duration, args, sections)
        if "threads" in sections:
            threads(sized_models(root, args), media, args.repeats)
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

    sampler = PeakSampler()
    root = settings.data_dir.parent
    if "stages" in sections:
        engine = DubbingEngine(settings, PipelineOptions(overlap=False))
        rows = []
        for run in ("cold", "warm"):
            total, context = run_job(engine, media, run, root, sampler, args.target,
                                     args.source)
            rows += [(run, phase.value, seconds, peak) for phase, seconds, peak in context.stages]
            rows.append((run, "total", total, max(p for *_, p in context.stages)))
        engine.close()
        print("\nSequential job, per stage (cold loads every model, warm reuses them)")
        print(f"{'run':<6}{'stage':<14}{'seconds':>9}{'RTF':>8}{'peak RSS MB':>13}")
        for run, stage, seconds, peak in rows:
            print(f"{run:<6}{stage:<14}{seconds:>9.2f}{seconds / duration:>8.3f}"
                  f"{peak / 2**20:>13.0f}")
    if "overlap" in sections:
        for name in args.scenarios.split(","):
            scenario = (Scenario("tiny", settings, "the job's models") if name == "tiny"
                        else sized_scenario(settings, sized_models(root, args)))
            compare_modes(scenario, media, duration, args, sampler)
    sampler.close()


@dataclass(frozen=True)
class Scenario:
    name: str
    settings: Settings
    note: str
    batch_size: int = 8
    """Translation batch size of every mode."""


@dataclass(frozen=True)
class SizedModels:
    """Models that cost what production ones cost per segment, built offline.

    Whisper base (real weights; production's default is small), an OPUS-MT-sized Marian
    and a default-size VITS (random weights). Random weights never emit `</s>`, so the
    Marian always decodes to the engine's budget (2 x input + 16 tokens, ~2.5x a real
    translation) and says more than a real one would; the voice's `length_scale` is set
    so each line lasts as long as the source line it dubs (a real dub's length).
    """

    asr: Path
    marian: Path
    voice: Path
    length_scale: float


_sized: dict[Path, SizedModels] = {}


def sized_models(root: Path, args: argparse.Namespace) -> SizedModels:
    """Built once per run (the overlap and threads sections share them)."""
    if root not in _sized:
        marian = _tiny_models.build_tiny_marian(root / "marian-sized", args.source,
                                                args.target, opus_sized=True, words=SENTENCES)
        voice, scale = speaking_voice(root / "vits-sized", marian, args.target)
        asr = (_tiny_models.whisper_base(root / "whisper-base") if args.sized_asr == "base"
               else Path(args.sized_asr))
        _sized[root] = SizedModels(asr, marian, voice, scale)
    return _sized[root]


def sized_scenario(settings: Settings, models: SizedModels) -> Scenario:
    """The sized models in a job, translating one segment per call in both modes.

    With random weights a batch says as much as its longest sentence allows, so batching
    (which differs between the modes) would change how much there is to voice; a real
    model stops at its own `</s>` whatever the batch.
    """
    voice = str(models.voice)
    sized = settings.model_copy(update={
        "asr_model": str(models.asr), "translation_model": str(models.marian),
        "tts_voices": {language: voice for language in settings.tts_voices},
        "tts_fallback_voice": voice})
    return Scenario("sized", sized, f"asr={models.asr.name}, OPUS-MT-sized random Marian, "
                    f"default-size random VITS (length_scale {models.length_scale:.2f}), "
                    "translation batch 1", batch_size=1)


def speaking_voice(folder: Path, marian: Path, target: str) -> tuple[Path, float]:
    """A default-size random VITS whose dub of each sentence lasts as long as its espeak."""
    from server.pipeline.models import Device
    from server.pipeline.synthesize import load_voice
    from server.pipeline.translate import load_translator

    cpu = Device("cpu")
    translator = load_translator(str(marian), cpu, offline=True, setting="bench",
                                 backend="ctranslate2")
    texts = [translator.translate([text], "en", target)[0] for text in SENTENCES]
    voice = load_voice(str(_tiny_models.build_vits(folder)), cpu, offline=True)
    spoken = sum(voice.speak(text, target).size for text in texts) / voice.sample_rate
    said = sum(_media.read_wav(_tiny_models.espeak(text, folder / f"s{i}.wav"), 22_050).size
               for i, text in enumerate(SENTENCES)) / 22_050
    scale = said / spoken
    return _tiny_models.build_vits(folder, length_scale=scale), scale


def compare_modes(scenario: Scenario, media: Path, duration: float, args: argparse.Namespace,
                  sampler: PeakSampler) -> None:
    """Each mode's warm job, alternating, best of `--repeats`; the sequential stage split."""
    from server.pipeline import DubbingEngine, PipelineOptions
    from server.pipeline.options import available_cores

    cores = available_cores()
    workers = [int(n) for n in args.tts_workers.split(",")]
    batch = scenario.batch_size
    modes = {"sequential": PipelineOptions(overlap=False, translation_batch_size=batch),
             # CTranslate2 is slower on 2 threads than 1 for small batches (threads section)
             "sequential, 1 translation thread": PipelineOptions(
                 overlap=False, translation_batch_size=batch, translation_cpu_threads=1),
             f"overlapped, {cores} threads per stage (old)": PipelineOptions(
                 tts_workers=workers[0], asr_cpu_threads=cores, translation_cpu_threads=cores,
                 tts_cpu_threads=cores, translation_batch_size=batch)}
    modes.update({f"overlapped, {n} voice worker{'s' * (n > 1)}": PipelineOptions(
        tts_workers=n, translation_batch_size=batch) for n in workers})
    engine = DubbingEngine(scenario.settings, modes["sequential"])
    root = scenario.settings.data_dir.parent
    times: dict[str, list[float]] = {name: [] for name in modes}
    split: dict[str, float] = {}
    for index in range(-1, args.repeats):  # -1 warms each mode's models, untimed
        for mode, (name, options) in enumerate(modes.items()):
            engine.options = options
            seconds, context = run_job(engine, media, f"{scenario.name}-{mode}-{index + 1}",
                                       root, sampler, args.target, args.source)
            if index < 0:
                continue
            times[name].append(seconds)
            if name == "sequential" and seconds == min(times[name]):
                split = {phase.value: took for phase, took, _ in context.stages}
    engine.close()
    print(f"\nWarm job end to end, {scenario.name}: {scenario.note} ({args.repeats} runs "
          "each, alternating)")
    print("sequential stages (best run): "
          + ", ".join(f"{stage} {took:.2f} s" for stage, took in split.items()))
    print(f"{'mode':<38}{'best s':>8}{'median s':>10}{'RTF':>8}{'speed-up':>10}"
          "  (vs the faster sequential row)")
    base = min(min(runs) for name, runs in times.items() if name.startswith("sequential"))
    for name, runs in times.items():
        print(f"{name:<38}{min(runs):>8.2f}{statistics.median(runs):>10.2f}"
              f"{min(runs) / duration:>8.3f}{base / min(runs):>9.2f}x")


def threads(models: SizedModels, media: Path, repeats: int) -> None:
    from bench import _compare
    from server.pipeline.media import decode_audio
    from server.pipeline.options import available_cores

    cores = available_cores()
    audio = decode_audio(media)[: 16_000 * 30]
    speeds = _compare.thread_scaling(models.asr, audio, models.marian, SENTENCES,
                                     models.voice, cores=cores, repeats=repeats)
    print(f"\nThreads per stage library, sized models ({models.asr.name}; "
          f"{audio.size / 16_000:.0f} s of audio, {len(SENTENCES)} sentences one at a time)")
    print(f"{'stage':<12}{'threads':<12}{'seconds':>9}{'speed-up':>10}")
    for stage, runs in speeds.items():
        for speed in runs:
            print(f"{stage:<12}{speed.name:<12}{speed.seconds:>9.2f}"
                  f"{runs[0].seconds / speed.seconds:>9.2f}x")


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
