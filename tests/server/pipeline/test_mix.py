"""Timeline placement, ducking and mix modes."""

from __future__ import annotations

import numpy as np
import pytest
from octavia.errors import Reason

from server.engine import EngineError
from server.pipeline.mix import duck_envelope, mix, place, require_separation

RATE = 1000


def test_place_puts_lines_at_their_start_and_clips_at_the_end() -> None:
    track = place([(0.5, np.ones(200, np.float32)), (1.9, np.ones(500, np.float32))],
                  2000, RATE)

    assert track.size == 2000
    assert track[:500].sum() == 0 and track[500:700].sum() == 200
    assert track[1900:].sum() == 100


def test_duck_envelope_ramps_between_full_and_ducked() -> None:
    envelope = duck_envelope([(1.0, 2.0)], 3000, RATE, gain=0.2, ramp_seconds=0.1)

    assert envelope[0] == pytest.approx(1.0) and envelope[-1] == pytest.approx(1.0)
    assert envelope[1500] == pytest.approx(0.2)
    assert np.all(np.abs(np.diff(envelope)) <= 0.8 / 200 + 1e-6)  # no steps, only ramps


def test_ducked_keeps_the_original_outside_the_dub() -> None:
    original = np.full(3000, 0.5, np.float32)
    dub = place([(1.0, np.full(1000, 0.3, np.float32))], 3000, RATE)

    out = mix(original, dub, mode="ducked", spans=[(1.0, 2.0)], sample_rate=RATE,
              duck_gain=0.2, ramp_seconds=0.05)

    assert out[100] == pytest.approx(0.5)
    assert out[1500] == pytest.approx(0.5 * 0.2 + 0.3)


def test_dub_only_drops_the_original_and_never_clips() -> None:
    dub = np.full(100, 1.7, np.float32)
    out = mix(np.ones(100, np.float32), dub, mode="dub_only", spans=[], sample_rate=RATE,
              duck_gain=0.2, ramp_seconds=0.05)
    assert float(np.max(np.abs(out))) <= 1.0


def test_separated_without_a_model_fails_before_any_work() -> None:
    with pytest.raises(EngineError) as caught:
        require_separation("separated", None)
    assert caught.value.reason == Reason.MODEL_MISSING
    assert "OCTAVIA_SEPARATION_MODEL" in caught.value.message
    require_separation("ducked", None)
