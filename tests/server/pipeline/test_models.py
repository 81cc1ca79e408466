"""The model cache and how missing models are reported."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from octavia.errors import Reason

from server.engine import EngineError
from server.pipeline.models import Device, ModelCache, is_out_of_memory


def test_cache_evicts_the_least_recently_used() -> None:
    cache = ModelCache(capacity=2)
    cache.get(("a",), lambda: "A")
    cache.get(("b",), lambda: "B")
    cache.get(("a",), lambda: "never")  # touch a: b is now the oldest
    cache.get(("c",), lambda: "C")

    assert cache.keys() == [("a",), ("c",)]
    assert cache.get(("a",), lambda: "never").model == "A"


def test_concurrent_requests_load_a_model_once() -> None:
    cache = ModelCache(capacity=2)
    loads = []

    def load() -> str:
        loads.append(1)
        time.sleep(0.2)
        return "model"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(("m",), load)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(loads) == 1
    assert len({id(r) for r in results}) == 1


def test_out_of_memory_is_recognised() -> None:
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


CPU = Device("cpu")


@pytest.mark.ml
def test_missing_asr_folder_names_the_model_and_the_fix(tmp_path: Path) -> None:
    from server.pipeline.transcribe import load_whisper

    with pytest.raises(EngineError) as caught:
        load_whisper(str(tmp_path), CPU, offline=True)

    assert caught.value.reason == Reason.MODEL_MISSING
    assert str(tmp_path) in caught.value.message
    assert "OCTAVIA_ASR_MODEL" in caught.value.message


@pytest.mark.ml
def test_uncached_hub_model_offline_is_missing() -> None:
    from server.pipeline.transcribe import load_whisper

    with pytest.raises(EngineError) as caught:
        load_whisper("octavia-test/no-such-whisper", CPU, offline=True)

    assert caught.value.reason == Reason.MODEL_MISSING
    assert "OCTAVIA_OFFLINE=false" in caught.value.message


@pytest.mark.ml
def test_missing_voice_folder_and_undownloaded_voice_offline(tmp_path: Path) -> None:
    from server.pipeline.synthesize import load_voice

    with pytest.raises(EngineError) as caught:
        load_voice(str(tmp_path), CPU, offline=True)
    assert caught.value.reason == Reason.MODEL_MISSING

    with pytest.raises(EngineError) as caught:
        load_voice("tts_models/xx/octavia-test/vits", CPU, offline=True)
    assert caught.value.reason == Reason.MODEL_MISSING
    assert "tts_models/xx/octavia-test/vits" in caught.value.message


@pytest.mark.ml
def test_missing_translation_model_offline(tmp_path: Path) -> None:
    from server.pipeline.translate import load_translator

    with pytest.raises(EngineError) as caught:
        load_translator("Helsinki-NLP/opus-mt-xx-yy", CPU, offline=True,
                        setting="translation_model")

    assert caught.value.reason == Reason.MODEL_MISSING
    assert "Helsinki-NLP/opus-mt-xx-yy" in caught.value.message


@pytest.mark.ml
def test_a_corrupt_model_folder_is_told_apart_from_a_missing_one(
    tmp_path: Path, whisper_tiny_en: Path
) -> None:
    import shutil

    from server.pipeline.transcribe import load_whisper

    broken = tmp_path / "tiny.en"
    shutil.copytree(whisper_tiny_en, broken)
    model = broken / "model.bin"
    model.write_bytes(model.read_bytes()[:1000])  # a download cut short

    with pytest.raises(EngineError) as caught:
        load_whisper(str(broken), CPU, offline=True)

    assert caught.value.reason == Reason.MODEL_CORRUPT
    assert str(broken) in caught.value.message and "corrupt" in caught.value.message
