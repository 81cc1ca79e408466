"""An engine whose process dies mid-job: the scripted engine, but the worker SIGKILLs itself
right after a job enters a given phase, like a machine losing power (no clean-up, no last
report, no goodbye to procrastinate). It prints each phase it does work in (`engine works
<job> <phase>` on stderr, at the phase's first progress report), so a test can tell which
stages a resumed run skipped."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from server.engine import JobContext, JobResult, JobSpec
from server.jobs import Phase
from tests.support.engine import ScriptedEngine, scripted


class _DyingContext:
    def __init__(self, context: JobContext, job_id: str, phase: Phase | None) -> None:
        self._context = context
        self._job_id = job_id
        self._phase = phase
        self._current: Phase | None = None
        self._worked: set[Phase] = set()

    def enter(self, phase: Phase, step: str) -> None:
        self._context.enter(phase, step)
        self._current = phase
        if phase == self._phase:
            os.kill(os.getpid(), signal.SIGKILL)

    def progress(self, fraction: float, step: str) -> None:
        if self._current is not None and self._current not in self._worked:
            self._worked.add(self._current)
            print(f"engine works {self._job_id} {self._current.value}", file=sys.stderr,
                  flush=True)
        self._context.progress(fraction, step)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class DyingEngine:
    def __init__(self, engine: ScriptedEngine, phase: Phase | None) -> None:
        self.engine = engine
        self.phase = phase

    def run(self, job: JobSpec, context: JobContext) -> JobResult:
        return self.engine.run(job, _DyingContext(context, job.job_id, self.phase))

    def close(self) -> None:
        self.engine.close()


def dying(settings: object) -> DyingEngine:
    """Engine factory for worker subprocesses (`OCTAVIA_ENGINE=tests.support.dying:dying`):
    the process dies when a job enters `OCTAVIA_DIE_IN` (a phase name, e.g. `synthesizing`;
    unset, it never dies); `OCTAVIA_SCRIPTED_*` set the pace as for
    `tests.support.engine:scripted`."""
    die_in = os.environ.get("OCTAVIA_DIE_IN")
    return DyingEngine(scripted(settings), Phase(die_in) if die_in else None)
