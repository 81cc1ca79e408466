"""Tuning knobs of the pipeline that are not deployment settings.

`Settings` says which models to use and where; these say how to use them. The defaults
suit production; tests and the benchmark pass their own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PipelineOptions:
    asr_temperature: float | tuple[float, ...] = 0.0
    """0 decodes greedily and deterministically; a tuple enables Whisper's fallback ladder."""
    asr_beam_size: int = 5
    asr_cpu_threads: int = 0
    """0 lets CTranslate2 pick."""
    translation_batch_size: int = 8
    """Most segments per translation call (overlapped jobs batch what is waiting)."""
    translation_beams: int = 4
    translation_compute_type: str | None = None
    """CTranslate2 compute type; None is int8 on CPU, int8_float16 on CUDA."""
    translation_cpu_threads: int = 0
    """CTranslate2 threads per translation model; 0 lets it pick."""
    overlap: bool = True
    """Translate and voice each segment as soon as it is transcribed (see `_overlap`)."""
    overlap_queue_size: int = 16
    """Most segments a stage may run ahead of the next one when overlapping."""
    tts_workers: int = 1
    """Voice workers, each with its own TTS instance, when overlapping."""
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
