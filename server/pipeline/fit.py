"""Fitting a dubbed line into the time its source line took."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._audio import time_stretch

FADE_SECONDS = 0.02
TRIM_THRESHOLD = 0.01
"""Leading and trailing audio quieter than this share of the peak (-40 dB) is dropped."""


@dataclass(frozen=True)
class Fit:
    samples: np.ndarray
    """The fitted audio, to be placed at the segment's start; never longer than the room."""
    rate: float
    """Playback speed applied: above 1 the dub was sped up."""
    natural_seconds: float
    """Length of the synthesized speech, edge silence removed, before stretching."""
    residual_seconds: float
    """Stretched speech length minus the slot: positive means the dub ends late."""
    trimmed_seconds: float
    """Speech cut off because it ran into the next line or the end of the media."""


def trim_silence(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Drop the leading and trailing near-silence TTS models add around a line."""
    if samples.size == 0:
        return samples
    peak = float(np.max(np.abs(samples)))
    if peak <= 0:
        return samples[:0]
    loud = np.flatnonzero(np.abs(samples) >= peak * TRIM_THRESHOLD)
    margin = int(0.01 * sample_rate)
    return samples[max(int(loud[0]) - margin, 0): int(loud[-1]) + margin + 1]


def fit_to_slot(
    samples: np.ndarray,
    sample_rate: int,
    *,
    slot_seconds: float,
    room_seconds: float,
    min_rate: float,
    max_rate: float,
) -> Fit:
    """Stretch `samples` toward `slot_seconds` within [min_rate, max_rate], then pad or trim.

    `room_seconds` (at least the slot) is how long the line may run before the next one
    starts: a dub that is still too long after the fastest allowed rate spills into the
    pause after its slot, and only what would overlap the next line is cut.
    """
    speech = trim_silence(samples, sample_rate)
    slot = max(round(slot_seconds * sample_rate), 1)
    room = max(round(room_seconds * sample_rate), slot)
    if speech.size == 0:
        return Fit(np.zeros(slot, np.float32), 1.0, 0.0, -slot_seconds, 0.0)
    rate = float(np.clip(speech.size / slot, min_rate, max_rate))
    stretched = time_stretch(speech, rate, sample_rate)
    residual = (stretched.size - slot) / sample_rate
    trimmed = max(stretched.size - room, 0) / sample_rate
    if stretched.size > room:
        stretched = stretched[:room].copy()
        fade = min(int(FADE_SECONDS * sample_rate), stretched.size)
        stretched[stretched.size - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    elif stretched.size < slot:
        stretched = np.concatenate([stretched, np.zeros(slot - stretched.size, np.float32)])
    return Fit(
        samples=stretched.astype(np.float32, copy=False),
        rate=rate,
        natural_seconds=speech.size / sample_rate,
        residual_seconds=residual,
        trimmed_seconds=trimmed,
    )


@dataclass(frozen=True)
class DubbedLine:
    """A fitted line placed at `start` (seconds) on the output timeline."""

    start: float
    fit: Fit
    sample_rate: int

    @property
    def end(self) -> float:
        return self.start + self.fit.samples.size / self.sample_rate

    @property
    def speech_end(self) -> float:
        """Where the dubbed speech itself stops (before any padding)."""
        spoken = self.fit.natural_seconds / self.fit.rate - self.fit.trimmed_seconds
        return min(self.start + spoken, self.end)
