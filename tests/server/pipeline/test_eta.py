"""ETA estimates: priors first, then measured speeds."""

from __future__ import annotations

import time

import pytest

from server.pipeline.eta import CPU_PRIORS, JobClock, SpeedBook


def test_first_estimate_comes_from_priors() -> None:
    clock = JobClock(SpeedBook(), media_seconds=100)
    assert clock.eta(0.0) == pytest.approx(sum(CPU_PRIORS.values()) * 100, abs=1)


def test_measured_speeds_replace_priors() -> None:
    book = SpeedBook()
    for stage in ("transcribe", "translate", "synthesize", "finish"):
        book.record(stage, media_seconds=100, elapsed=0.0)
        book.record(stage, media_seconds=100, elapsed=0.0)
    clock = JobClock(book, media_seconds=100)
    assert clock.eta(0.0) < 0.3 * sum(CPU_PRIORS.values()) * 100


def test_a_running_stage_follows_its_own_progress() -> None:
    book = SpeedBook()
    clock = JobClock(book, media_seconds=10)
    clock.start("finish")
    time.sleep(0.6)
    assert clock.eta(0.5) == pytest.approx(0.6, abs=0.2)
