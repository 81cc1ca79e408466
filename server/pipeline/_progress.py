"""One progress bar for three stages that run at once.

When transcription, translation and synthesis overlap, the runner still expects one
phase at a time with a fraction within it (`JobContext.progress`), which it maps onto
that phase's `PHASE_SPAN`. So the board reports the bar, not a stage:

- Each stage has its own fraction, measured in media time: how far into the media the
  stage has finished every segment (1.0 once the stage is done).
- The overall percentage is the weighted sum of those fractions, each weighted by its
  phase's `PHASE_SPAN` width (40 + 15 + 37 = 92; the last 8 are uploading), and never
  goes down.
- The reported phase is the one whose span the percentage has reached, and the fraction
  is the percentage's position within that span. A phase is entered (in order, once
  each, with a closing `progress(1.0)` for the one left) when the bar crosses into it.
  The bar passes 40 only once translation or synthesis has started, 55 only once
  synthesis has, and reaches 92 only when all three are done, so the phase shown is
  always a stage that has started; UPLOADING is entered by the job after that.
- The step text names every stage under way ("Transcribing 0:42 / 1:30 · translated
  12 segments · voiced 9 segments").

Reporting "the earliest stage still running" as the phase would freeze the bar at the
end of that phase's span (40 % while transcription finishes) because the runner caps
progress to the current span: the bar would stop moving while work goes on.
"""

from __future__ import annotations

import threading
import time

from ..engine import JobContext
from ..jobs import PHASE_SPAN, Phase
from .eta import SpeedBook

STAGES = (Phase.TRANSCRIBING, Phase.TRANSLATING, Phase.SYNTHESIZING)
CLOCK_NAMES = {Phase.TRANSCRIBING: "transcribe", Phase.TRANSLATING: "translate",
               Phase.SYNTHESIZING: "synthesize"}
ETA_INTERVAL = 1.0


def weighted(fractions: dict[Phase, float]) -> float:
    """The overall percentage for each overlapped stage's own fraction."""
    total = 0.0
    for phase in STAGES:
        start, end = PHASE_SPAN[phase]
        total += (end - start) * min(max(fractions.get(phase, 0.0), 0.0), 1.0)
    return total


def phase_at(percentage: float) -> Phase:
    """The last overlapped phase whose span the bar has passed into (a span's end is its own)."""
    reached = [p for p in STAGES if PHASE_SPAN[p][0] < percentage]
    return reached[-1] if reached else STAGES[0]


def within(phase: Phase, percentage: float) -> float:
    start, end = PHASE_SPAN[phase]
    return min(max((percentage - start) / (end - start), 0.0), 1.0)


class ProgressBoard:
    """Collects the stages' progress from their threads and reports it in order.

    The lock is held while the context is called, so phase changes and progress from
    different threads reach the runner in the order the bar moved.
    """

    def __init__(self, context: JobContext, speeds: SpeedBook, media_seconds: float) -> None:
        self._context = context
        self._speeds = speeds
        self._media = media_seconds
        self._lock = threading.Lock()
        self._fractions = {phase: 0.0 for phase in STAGES}
        self._notes: dict[Phase, str] = {}
        self._phase = Phase.TRANSCRIBING
        self._percentage = 0.0
        self._started = time.monotonic()
        self._eta_sent = 0.0

    @property
    def phase(self) -> Phase:
        return self._phase

    def advance(self, stage: Phase, fraction: float, note: str) -> None:
        """Stage `stage` has finished `fraction` of the media; `note` says what it did."""
        with self._lock:
            self._context.check_cancelled()  # nothing moves on after a cancel
            self._fractions[stage] = max(self._fractions[stage], min(fraction, 1.0))
            self._notes[stage] = note
            self._percentage = max(self._percentage, weighted(self._fractions))
            target = phase_at(self._percentage)
            step = " · ".join(self._notes[p] for p in STAGES if self._notes.get(p))
            while self._phase != target:
                self._context.progress(1.0, step)
                self._phase = STAGES[STAGES.index(self._phase) + 1]
                self._context.enter(self._phase, step)
            self._context.progress(within(self._phase, self._percentage), step)
            self._report_eta()

    def complete(self) -> None:
        """Every stage is done: the bar is at the end of SYNTHESIZING."""
        for stage in STAGES:
            self.advance(stage, 1.0, self._notes.get(stage, ""))

    def _report_eta(self) -> None:
        now = time.monotonic()
        if now - self._eta_sent < ETA_INTERVAL and self._eta_sent:
            return
        self._eta_sent = now
        self._context.update(eta_seconds=self.eta(now))

    def eta(self, now: float) -> float:
        """Seconds left: the job's own pace once it has some, else the slowest stage's speed."""
        done = self._percentage / PHASE_SPAN[Phase.SYNTHESIZING][1]
        elapsed = now - self._started
        finish = self._speeds.speed("finish") * self._media
        if done >= 0.05 and elapsed >= 0.5:
            return round(elapsed / done * (1.0 - done) + finish, 1)
        slowest = max(self._speeds.speed(CLOCK_NAMES[p]) for p in STAGES) * self._media
        return round(max(slowest - elapsed, 0.0) + finish, 1)
