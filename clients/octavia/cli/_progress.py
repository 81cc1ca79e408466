"""The live display of a running job: one row per pipeline phase, with its current step."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from ..v1 import jobs_pb2 as pb
from ._render import phase_name

# Where each running phase sits on the job's 0-100 bar; mirrors server/jobs.py PHASE_SPAN
# (display only: a server with other spans just shows slightly off per-phase bars).
PHASE_SPAN: dict[pb.JobPhase, tuple[float, float]] = {
    pb.JOB_PHASE_TRANSCRIBING: (0.0, 40.0),
    pb.JOB_PHASE_TRANSLATING: (40.0, 55.0),
    pb.JOB_PHASE_SYNTHESIZING: (55.0, 92.0),
    pb.JOB_PHASE_UPLOADING: (92.0, 100.0),
}


class PhaseProgress:
    """Feed it every update of a job; it draws a bar per phase as the job enters it."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description:<13}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[step]}"),
            console=console,
        )
        self._tasks: dict[pb.JobPhase, TaskID] = {}
        self._queued: TaskID | None = None

    def __enter__(self) -> PhaseProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, job: pb.Job) -> None:
        if job.phase == pb.JOB_PHASE_PENDING:
            step = f"{job.queue_position} job(s) ahead" if job.queue_position else "next"
            if self._queued is None:
                self._queued = self._progress.add_task("queued", total=None, step=step)
            self._progress.update(self._queued, step=step)
            return
        if self._queued is not None:
            self._progress.update(self._queued, total=1, completed=1, step="")
            self._queued = None
        if job.phase in PHASE_SPAN:
            self._enter(job.phase)
            start, end = PHASE_SPAN[job.phase]
            done = (job.progress_percentage - start) / (end - start) * 100
            self._progress.update(
                self._tasks[job.phase], completed=max(0.0, min(done, 100.0)),
                step=job.current_step,
            )
        elif job.status == pb.JOB_STATUS_COMPLETED:
            for task in self._tasks.values():
                self._progress.update(task, completed=100, step="")
        else:  # failed or cancelled: leave the bars where they stopped
            for task in self._tasks.values():
                self._progress.stop_task(task)

    def _enter(self, phase: pb.JobPhase) -> None:
        if phase in self._tasks:
            return
        for task in self._tasks.values():  # phases run in order: earlier ones are done
            self._progress.update(task, completed=100, step="")
        self._tasks[phase] = self._progress.add_task(phase_name(phase), total=100, step="")
