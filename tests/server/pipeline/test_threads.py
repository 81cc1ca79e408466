"""How many CPU threads each stage's library gets, sequential and overlapped."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from server.pipeline.options import PipelineOptions, StageThreads, stage_threads


def test_sequential_stages_keep_the_libraries_defaults() -> None:
    assert stage_threads(PipelineOptions(overlap=False), cores=8) == StageThreads(0, 0, 0, 0)


def test_overlapped_stages_split_the_cores_then_the_voices_take_them_all() -> None:
    """Auto splits the cores between overlapped stages; once transcription is over the
    voices get every core (a voice held to its one-thread share took 26.5 s instead of
    19.3 s on the bench's sized job)."""
    assert stage_threads(PipelineOptions(), cores=2) == StageThreads(1, 1, 1, 2)
    assert stage_threads(PipelineOptions(tts_workers=2), cores=2) == StageThreads(1, 1, 1, 1)
    assert stage_threads(PipelineOptions(), cores=8) == StageThreads(4, 2, 2, 8)
    assert stage_threads(PipelineOptions(tts_workers=2), cores=8) == StageThreads(2, 2, 2, 4)
    assert stage_threads(PipelineOptions(), cores=1) == StageThreads(1, 1, 1, 1)


def test_explicit_thread_counts_win() -> None:
    options = PipelineOptions(asr_cpu_threads=3, translation_cpu_threads=2, tts_cpu_threads=5)
    assert stage_threads(options, cores=2) == StageThreads(3, 2, 5, 5)
    assert stage_threads(PipelineOptions(overlap=False, tts_cpu_threads=1),
                         cores=4) == StageThreads(0, 0, 1, 1)


@pytest.mark.ml
def test_torch_threads_apply_to_the_line_and_do_not_leak() -> None:
    import torch

    from server.pipeline.synthesize import torch_threads

    before = torch.get_num_threads()
    seen: dict[str, int] = {}

    def voice() -> None:
        with torch_threads(1):
            seen["inside"] = torch.get_num_threads()
        seen["after"] = torch.get_num_threads()

    worker = threading.Thread(target=voice)
    worker.start()
    worker.join()
    fresh = threading.Thread(target=lambda: seen.update(fresh=torch.get_num_threads()))
    fresh.start()
    fresh.join()
    with torch_threads(0):
        seen["untouched"] = torch.get_num_threads()

    assert seen == {"inside": 1, "after": before, "fresh": before, "untouched": before}


def test_the_engine_loads_each_model_with_its_stage_threads(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from server.pipeline import engine as engine_module
    from server.pipeline.engine import DubbingEngine
    from server.pipeline.models import Device
    from server.settings import Settings

    loads: list[tuple[str, int]] = []

    def fake(kind: str) -> Any:
        def load(name: str, device: Device, **kwargs: Any) -> str:
            loads.append((kind, kwargs["cpu_threads"]))
            return f"{kind}-{kwargs['cpu_threads']}"
        return load

    monkeypatch.setattr(engine_module, "load_whisper", fake("asr"))
    monkeypatch.setattr(engine_module, "load_translator", fake("translation"))
    settings = Settings(_env_file=None, data_dir=tmp_path, device="cpu",  # type: ignore[call-arg]
                        translation_model="marian-{src}-{tgt}")
    engine = DubbingEngine(settings, PipelineOptions(asr_cpu_threads=1,
                                                     translation_cpu_threads=1))
    engine.asr_model()
    engine.translator("en", "es")
    engine.options = PipelineOptions(overlap=False)  # the bench switches modes like this
    assert engine.asr_model().model == "asr-0", "a copy loaded with the new mode's threads"
    engine.asr_model()

    assert loads == [("asr", 1), ("translation", 1), ("asr", 0)]
