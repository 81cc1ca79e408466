"""Time-left estimates from how fast each stage has run on this process.

Each stage's speed is kept as seconds of work per second of media, starting from a
rough prior and replaced by what jobs measure (an exponential average), so the first
job's estimate is a guess and later ones are informed. Within a running stage the
estimate follows the stage's own progress once there is enough of it.
"""

from __future__ import annotations

import threading
import time

STAGES = ("transcribe", "translate", "synthesize", "finish")

CPU_PRIORS = {"transcribe": 0.5, "translate": 0.1, "synthesize": 0.6, "finish": 0.05}
GPU_SPEEDUP = 5.0
SMOOTHING = 0.5


class SpeedBook:
    """Per-process stage speeds, shared by all jobs."""

    def __init__(self, *, gpu: bool = False) -> None:
        divisor = GPU_SPEEDUP if gpu else 1.0
        self._speeds = {stage: prior / divisor for stage, prior in CPU_PRIORS.items()}
        self._lock = threading.Lock()

    def speed(self, stage: str) -> float:
        with self._lock:
            return self._speeds[stage]

    def record(self, stage: str, media_seconds: float, elapsed: float) -> None:
        if media_seconds <= 0:
            return
        with self._lock:
            old = self._speeds[stage]
            self._speeds[stage] = (1 - SMOOTHING) * old + SMOOTHING * (elapsed / media_seconds)


class JobClock:
    """Times one job's stages and answers "how long until it's done?"."""

    def __init__(self, book: SpeedBook, media_seconds: float) -> None:
        self._book = book
        self._media = media_seconds
        self._stage = STAGES[0]
        self._started = time.monotonic()

    def start(self, stage: str) -> None:
        self._stage = stage
        self._started = time.monotonic()

    def finish(self, *, record: bool = True) -> None:
        """Record the current stage's measured speed (not when it reused saved work)."""
        if record:
            self._book.record(self._stage, self._media, time.monotonic() - self._started)

    def eta(self, fraction: float) -> float:
        """Seconds left for the job, `fraction` of the current stage being done."""
        elapsed = time.monotonic() - self._started
        if fraction >= 0.05 and elapsed >= 0.5:
            current = elapsed / fraction * (1.0 - fraction)
        else:
            current = max(self._book.speed(self._stage) * self._media - elapsed, 0.0)
        later = STAGES[STAGES.index(self._stage) + 1:]
        return round(current + sum(self._book.speed(s) * self._media for s in later), 1)
