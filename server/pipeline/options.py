"""Tuning knobs of the pipeline that are not deployment settings.

`Settings` says which models to use and where; these say how to use them. The defaults
suit production; tests and the benchmark pass their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class PipelineOptions:
    asr_temperature: float | tuple[float, ...] = 0.0
    """0 decodes greedily and deterministically; a tuple enables Whisper's fallback ladder."""
    asr_beam_size: int = 5
    asr_cpu_threads: int = 0
    """Whisper's CTranslate2 threads; 0 is auto (see `stage_threads`)."""
    translation_batch_size: int = 8
    """Most segments per translation call (overlapped jobs batch what is waiting)."""
    translation_beams: int = 4
    translation_compute_type: str | None = None
    """CTranslate2 compute type; None is int8 on CPU, int8_float16 on CUDA."""
    translation_cpu_threads: int = 0
    """CTranslate2 threads per translation model; 0 is auto (see `stage_threads`)."""
    tts_cpu_threads: int = 0
    """torch threads of each voice worker while it speaks; 0 is auto (see `stage_threads`)."""
    overlap: bool = True
    """Translate and voice each segment as soon as it is transcribed (see `_overlap`)."""
    overlap_queue_size: int = 16
    """Most segments a stage may run ahead of the next one when overlapping."""
    tts_workers: int = 1
    """Voice workers, each with its own TTS instance, when overlapping. Two were ~10 %
    faster end to end on 2 cores with a production-sized VITS, but hold a second copy of
    the voice (docs/performance.md)."""
    decode_once_max_seconds: float = 1800.0
    """Media up to this long is decoded once for both ASR and the mix (costs ~10 MB/min)."""
    min_rate: float = 0.8
    """Slowest a dubbed segment may be played to fill its slot."""
    max_rate: float = 1.35
    """Fastest a dubbed segment may be played to fit its slot."""
    duck_gain: float = 0.2
    """Level of the original audio under the dub in `ducked` mode (about -14 dB)."""
    duck_ramp_seconds: float = 0.15
    mix_sample_rate: int = 44_100
    aac_bitrate: int = 128_000


@dataclass(frozen=True)
class StageThreads:
    """CPU threads each stage's library runs with; 0 leaves the library's default."""

    asr: int
    translation: int
    tts: int
    """Each voice worker's torch threads while Whisper still runs."""
    tts_alone: int
    """Each voice worker's torch threads once transcription is over."""


def stage_threads(options: PipelineOptions, cores: int | None = None) -> StageThreads:
    """Threads per stage: an explicit option wins, 0 (auto) follows the job's mode.

    Sequential stages run one at a time, so auto leaves each library its default (torch:
    one per core; CTranslate2: 4 at most). Overlapped stages run at once, so auto splits
    the cores instead of
    oversubscribing them: translation and each voice worker get `cores // stages` (at
    least 1), Whisper the rest (at least 1). Once transcription is over the voice
    workers, which then do nearly all the work left, share every core. Whisper's and the
    translator's counts are fixed when the model loads; torch's is set per line
    (`synthesize.torch_threads`). On 2 cores the split made no measurable difference
    end to end against a thread per core in every stage, but a voice held to its share
    after transcription was much slower (docs/performance.md).
    """
    cores = cores or available_cores()
    workers = max(options.tts_workers, 1)
    auto = StageThreads(0, 0, 0, 0)
    if options.overlap:
        stages = 2 + workers
        share = max(cores // stages, 1)
        auto = StageThreads(max(cores - share * (stages - 1), 1), share, share,
                            max(cores // workers, 1))
    return StageThreads(options.asr_cpu_threads or auto.asr,
                        options.translation_cpu_threads or auto.translation,
                        options.tts_cpu_threads or auto.tts,
                        options.tts_cpu_threads or auto.tts_alone)


def available_cores() -> int:
    """Cores this process may run on (its affinity, which containers narrow), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
