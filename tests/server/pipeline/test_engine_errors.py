"""How the engine picks models and reports what goes wrong inside a stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from octavia.errors import Reason

from server.engine import EngineError
from server.pipeline import DubbingEngine
from server.pipeline.models import Resident
from server.settings import Settings

pytestmark = pytest.mark.ml


def variant(settings: Settings, **changes: Any) -> DubbingEngine:
    return DubbingEngine(settings.model_copy(update=changes))


def test_missing_pair_model_falls_back(pipeline_settings: Settings, tiny_marian: Path) -> None:
    engine = variant(pipeline_settings, translation_model="/nowhere/opus-mt-{src}-{tgt}",
                     translation_fallback_model=str(tiny_marian))

    resident = engine.translator("en", "es")

    assert resident.model.name == str(tiny_marian)
    assert engine.translation_model_name("en", "es") == str(tiny_marian)


def test_no_translation_model_at_all_names_both(pipeline_settings: Settings) -> None:
    engine = variant(pipeline_settings, translation_model="/nowhere/opus-mt-{src}-{tgt}",
                     translation_fallback_model="/nowhere/nllb")

    with pytest.raises(EngineError) as caught:
        engine.translator("en", "es")

    assert caught.value.reason == Reason.MODEL_MISSING
    assert "/nowhere/opus-mt-en-es" in caught.value.message
    assert "/nowhere/nllb" in caught.value.message


def test_separation_model_that_cannot_load_is_missing(pipeline_settings: Settings,
                                                      make_job: Any, context: Any,
                                                      speech_en: Path) -> None:
    engine = variant(pipeline_settings, separation_model="/nowhere/htdemucs")

    with pytest.raises(EngineError) as caught:
        engine.separator()

    assert caught.value.reason == Reason.MODEL_MISSING
    assert "/nowhere/htdemucs" in caught.value.message


class BrokenVoice:
    name = "broken"
    sample_rate = 16_000

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def speak(self, text: str, language: str) -> Any:
        raise self.error


@pytest.mark.parametrize(("error", "reason", "retryable", "words"), [
    (MemoryError(), Reason.OUT_OF_MEMORY, True, "memory"),
    (RuntimeError("CUDA out of memory"), Reason.OUT_OF_MEMORY, True, "memory"),
    (ValueError("bad tensor shape"), Reason.STAGE_FAILED, False, "speech synthesis"),
])
def test_failures_inside_a_stage_are_named(engine: DubbingEngine, make_job: Any, context: Any,
                                           speech_en: Path, monkeypatch: pytest.MonkeyPatch,
                                           error: BaseException, reason: str, retryable: bool,
                                           words: str) -> None:
    monkeypatch.setattr(engine, "voice", lambda language: Resident(BrokenVoice(error)))

    with pytest.raises(EngineError) as caught:
        engine.run(make_job(speech_en, source="en"), context)

    assert caught.value.reason == reason
    assert caught.value.retryable is retryable
    assert words in caught.value.message
    assert not any(context.writer.folder.iterdir())
