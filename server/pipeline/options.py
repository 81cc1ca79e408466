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
    translation_beams: int = 4
    min_rate: float = 0.8
    """Slowest a dubbed segment may be played to fill its slot."""
    max_rate: float = 1.35
    """Fastest a dubbed segment may be played to fit its slot."""
    duck_gain: float = 0.2
    """Level of the original audio under the dub in `ducked` mode (about -14 dB)."""
    duck_ramp_seconds: float = 0.15
    mix_sample_rate: int = 44_100
    aac_bitrate: int = 128_000
