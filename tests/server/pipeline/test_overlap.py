"""Overlapped stages: one ordered phase story and a bar that never drops, same results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.jobs import PHASE_SPAN, Phase, overall_percentage
from server.pipeline._progress import ProgressBoard, phase_at, weighted
from server.pipeline.eta import SpeedBook

RUNNING = [Phase.TRANSCRIBING, Phase.TRANSLATING, Phase.SYNTHESIZING, Phase.UPLOADING]
T, L, S = Phase.TRANSCRIBING, Phase.TRANSLATING, Phase.SYNTHESIZING


class Recorder:
    """The parts of JobContext the board uses."""

    def __init__(self) -> None:
        self.phase = T
        self.events: list[tuple[str, Phase, float, str]] = [("enter", T, 0.0, "")]
        self.etas: list[float] = []

    def enter(self, phase: Phase, step: str) -> None:
        self.phase = phase
        self.events.append(("enter", phase, 0.0, step))

    def progress(self, fraction: float, step: str) -> None:
        self.events.append(("progress", self.phase, fraction, step))

    def update(self, *, eta_seconds: float | None = None, **_: Any) -> None:
        if eta_seconds is not None:
            self.etas.append(eta_seconds)

    def check_cancelled(self) -> None:
        pass

    def bar(self) -> list[float]:
        return [overall_percentage(phase, fraction) for _, phase, fraction, _ in self.events]


def test_the_bar_is_the_weighted_sum_of_the_stages() -> None:
    assert weighted({T: 1.0, L: 1.0, S: 1.0}) == PHASE_SPAN[S][1] == 92.0
    assert weighted({T: 0.5, L: 0.2, S: 0.1}) == pytest.approx(20 + 3 + 3.7)
    assert [phase_at(p) for p in (0, 39.9, 40, 40.1, 55, 55.1, 92)] == [T, T, T, L, L, S, S]


def test_board_enters_each_phase_once_in_order_and_the_bar_never_drops() -> None:
    context = Recorder()
    board = ProgressBoard(context, SpeedBook(), media_seconds=60)  # type: ignore[arg-type]
    # Stages interleave as threads report; translation jumps ahead, a report repeats.
    for stage, fraction in [(T, 0.2), (L, 0.1), (T, 0.5), (S, 0.05), (L, 0.5), (T, 0.9),
                            (S, 0.4), (L, 0.4), (T, 1.0), (L, 1.0), (S, 0.9)]:
        board.advance(stage, fraction, f"{stage.value} {fraction}")
    board.complete()

    entered = [phase for kind, phase, _, _ in context.events if kind == "enter"]
    assert entered == [T, L, S]
    bar = context.bar()
    assert bar == sorted(bar) and bar[-1] == 92.0
    closing = [context.events[i - 1] for i, e in enumerate(context.events) if e[0] == "enter"
               and i > 0]
    assert all(kind == "progress" and fraction == 1.0 for kind, _, fraction, _ in closing)
    assert context.events[-1][3] == "transcribing 1.0 · translating 1.0 · synthesizing 0.9"
    assert context.etas and all(eta >= 0 for eta in context.etas)


def test_the_phase_shown_is_a_stage_that_has_started() -> None:
    context = Recorder()
    board = ProgressBoard(context, SpeedBook(), media_seconds=10)  # type: ignore[arg-type]

    board.advance(T, 0.99, "almost transcribed")
    assert context.phase == T, "no translating phase before any translation"
    board.advance(T, 1.0, "transcribed")
    board.advance(L, 1.0, "translated")
    assert context.phase == L, "no synthesizing phase before any synthesis"
    board.advance(S, 0.01, "voicing")
    assert context.phase == S


@pytest.mark.ml
def test_overlapped_and_sequential_runs_give_the_same_dub(
    engine: Any, pipeline_settings: Any, make_job: Any, context: Any, speech_en: Path,
    tmp_path: Path,
) -> None:
    from server.pipeline import DubbingEngine, PipelineOptions

    sequential = DubbingEngine(pipeline_settings, PipelineOptions(
        overlap=False, asr_beam_size=1, translation_beams=1))
    sequential.models = engine.models  # the same loaded models: only the schedule differs
    assert engine.options.overlap

    overlapped = engine.run(make_job(speech_en, source="en"), context)
    other = type(context)(tmp_path / "sequential")
    reference = sequential.run(make_job(speech_en, source="en"), other)

    for recorded in (context, other):
        assert recorded.phases == RUNNING
        bar = [overall_percentage(e.phase, e.fraction) for e in recorded.events]
        assert bar == sorted(bar), "the overall percentage went back"
    assert any("Transcribing" in e.step for e in context.events)
    assert {a.name for a in overlapped.artifacts} == {a.name for a in reference.artifacts}
    assert overlapped.output_file == reference.output_file

    def segments(folder: Path) -> list[tuple[float, float, str, str]]:
        document = json.loads((folder / "transcript.json").read_text())
        return [(s["start"], s["end"], s["text"], s["translation"])
                for s in document["segments"]]

    assert segments(context.writer.folder) == segments(other.writer.folder)
