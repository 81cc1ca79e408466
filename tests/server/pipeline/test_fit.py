"""Time stretching and slot fitting of dubbed lines."""

from __future__ import annotations

import numpy as np
import pytest

from server.pipeline._audio import resample, time_stretch
from server.pipeline.fit import fit_to_slot, trim_silence

RATE = 16_000


def tone(seconds: float, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * RATE / samples.size)


@pytest.mark.parametrize("rate", [0.8, 1.0, 1.2, 1.35])
def test_time_stretch_changes_length_not_pitch(rate: float) -> None:
    source = tone(4.0)

    stretched = time_stretch(source, rate, RATE)

    assert stretched.size == round(source.size / rate)
    middle = stretched[RATE // 2: -RATE // 2]
    assert dominant_hz(middle) == pytest.approx(220.0, abs=2.0)
    assert np.max(np.abs(middle)) == pytest.approx(0.5, abs=0.05)


def test_resample_keeps_duration() -> None:
    assert resample(tone(2.0), RATE, 44_100).size == pytest.approx(88_200, abs=64)


def test_trim_silence_drops_padding() -> None:
    padded = np.concatenate([np.zeros(RATE), tone(1.0), np.zeros(RATE)])
    assert trim_silence(padded, RATE).size / RATE == pytest.approx(1.0, abs=0.03)


def test_a_long_line_is_sped_up_at_most_to_the_bound_then_cut_at_the_next_line() -> None:
    fit = fit_to_slot(tone(3.0), RATE, slot_seconds=1.0, room_seconds=1.5,
                      min_rate=0.8, max_rate=1.35)

    assert fit.rate == pytest.approx(1.35)
    assert fit.samples.size == int(1.5 * RATE)
    assert fit.residual_seconds == pytest.approx(3.0 / 1.35 - 1.0, abs=0.01)
    assert fit.trimmed_seconds == pytest.approx(3.0 / 1.35 - 1.5, abs=0.01)
    assert abs(fit.samples[-1]) < 1e-3  # faded out, no click


def test_a_slightly_long_line_fits_its_slot_exactly() -> None:
    fit = fit_to_slot(tone(2.4), RATE, slot_seconds=2.0, room_seconds=5.0,
                      min_rate=0.8, max_rate=1.35)

    assert fit.rate == pytest.approx(1.2)
    assert fit.samples.size == pytest.approx(2 * RATE, abs=2)
    assert abs(fit.residual_seconds) < 0.01
    assert fit.trimmed_seconds == 0


def test_a_short_line_is_slowed_at_most_to_the_bound_then_padded() -> None:
    fit = fit_to_slot(tone(1.0), RATE, slot_seconds=2.0, room_seconds=2.0,
                      min_rate=0.8, max_rate=1.35)

    assert fit.rate == pytest.approx(0.8)
    assert fit.samples.size == 2 * RATE
    assert fit.residual_seconds == pytest.approx(1.25 - 2.0, abs=0.01)
    assert np.all(fit.samples[int(1.3 * RATE):] == 0)


def test_silent_speech_becomes_a_silent_slot() -> None:
    fit = fit_to_slot(np.zeros(RATE, np.float32), RATE, slot_seconds=0.5, room_seconds=1.0,
                      min_rate=0.8, max_rate=1.35)
    assert fit.samples.size == RATE // 2 and not fit.samples.any()
