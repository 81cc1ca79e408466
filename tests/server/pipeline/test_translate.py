"""Translation through the production loader (both backends) on tiny random-weight models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from octavia.errors import Reason

from server.engine import EngineError
from server.pipeline import _ct2
from server.pipeline._ct2 import Ct2Translator
from server.pipeline.models import Device
from server.pipeline.translate import (
    load_translator,
    nllb_code,
    pair_model_name,
    translate_all,
)

pytestmark = pytest.mark.ml


def test_tiny_marian_translates_batches(tiny_marian: Path) -> None:
    translator = load_translator(str(tiny_marian), Device("cpu"), offline=True,
                                 setting="translation_model")
    texts = ["Hello and welcome.", "The quick brown fox.", "We measure each stage.",
             "Speech to speech.", "A fifth line."]
    progress: list[int] = []

    out = translate_all(lambda batch: translator.translate(batch, "en", "es", beams=1),
                        texts, batch_size=2, on_batch=progress.append)

    assert translator.kind == "marian"
    assert len(out) == len(texts) and all(isinstance(t, str) for t in out)
    assert progress == [2, 4, 5]


def test_pair_template_and_nllb_codes() -> None:
    assert pair_model_name("Helsinki-NLP/opus-mt-{src}-{tgt}", "en", "es") == \
        "Helsinki-NLP/opus-mt-en-es"
    assert pair_model_name("/models/marian", "en", "es") == "/models/marian"
    assert nllb_code("es") == "spa_Latn" and nllb_code("zh") == "zho_Hans"
    with pytest.raises(EngineError) as caught:
        nllb_code("haw")
    assert caught.value.reason == Reason.UNSUPPORTED_LANGUAGE


def test_tiny_nllb_is_driven_with_flores_codes(tmp_path: Path) -> None:
    from bench import _tiny_models

    folder = _tiny_models.build_tiny_nllb(tmp_path / "nllb")
    translator = load_translator(str(folder), Device("cpu"), offline=True,
                                 setting="translation_fallback_model")
    calls: list[dict[str, object]] = []
    generate = translator.model.generate

    def spy(**kwargs: object) -> object:
        calls.append(kwargs)
        return generate(**kwargs)

    translator.model.generate = spy

    out = translator.translate(["Hello and welcome.", "The quick brown fox."], "en", "es",
                               beams=1)

    assert translator.kind == "nllb"
    assert len(out) == 2
    assert translator.tokenizer.src_lang == "eng_Latn"
    spanish = translator.tokenizer.convert_tokens_to_ids("spa_Latn")
    assert calls[0]["forced_bos_token_id"] == spanish != translator.tokenizer.unk_token_id


TEXTS = ["Hello and welcome to the show.", "The quick brown fox jumps over the lazy dog.",
         "We measure how long each stage takes.", "Speech to speech."]


def test_ctranslate2_gives_the_transformers_greedy_tokens(tiny_marian: Path,
                                                           tmp_path: Path) -> None:
    reference = load_translator(str(tiny_marian), Device("cpu"), offline=True,
                                setting="translation_model", backend="transformers")
    fast = load_translator(str(tiny_marian), Device("cpu"), offline=True,
                           setting="translation_model", backend="ctranslate2",
                           cache_root=tmp_path, compute_type="float32")

    assert isinstance(fast, Ct2Translator) and fast.kind == "marian"
    assert fast.translate(TEXTS, "en", "es", beams=1) == \
        reference.translate(TEXTS, "en", "es", beams=1)
    int8 = load_translator(str(tiny_marian), Device("cpu"), offline=True,
                           setting="translation_model", backend="ctranslate2",
                           cache_root=tmp_path)
    assert len(int8.translate(TEXTS, "en", "es", beams=2)) == len(TEXTS)


def test_the_conversion_is_made_once_and_redone_when_the_model_changes(
    tiny_marian: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "marian"
    shutil.copytree(tiny_marian, folder, ignore=shutil.ignore_patterns("ctranslate2-*"))
    conversions: list[Path] = []
    convert = _ct2.convert
    monkeypatch.setattr(_ct2, "convert", lambda source, target, quantization: (
        conversions.append(target), convert(source, target, quantization)))

    def load() -> Ct2Translator:
        return _ct2.load_ct2_translator(str(folder), Device("cpu"), offline=True,
                                        cache_root=tmp_path / "cache")

    first = load()
    second = load()
    assert len(conversions) == 1
    assert first.folder == second.folder == folder / "ctranslate2-int8"
    weights = next(folder.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    load()
    assert len(conversions) == 2


def test_a_read_only_model_is_converted_under_the_cache(
    tiny_marian: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_ct2.os, "access", lambda path, mode: False)

    target = _ct2.cache_folder(tiny_marian, str(tiny_marian), "int8", tmp_path)

    assert target.parent.parent == tmp_path and target.name == "ctranslate2-int8"
    assert _ct2.cache_folder(tiny_marian, "Helsinki-NLP/opus-mt-en-es", None,
                             tmp_path).name == "ctranslate2-float32"


def test_tiny_nllb_through_ctranslate2(tmp_path: Path) -> None:
    from bench import _tiny_models

    folder = _tiny_models.build_tiny_nllb(tmp_path / "nllb")
    translator = load_translator(str(folder), Device("cpu"), offline=True,
                                 setting="translation_fallback_model", backend="ctranslate2",
                                 cache_root=tmp_path / "cache")

    assert isinstance(translator, Ct2Translator) and translator.kind == "nllb"
    assert len(translator.translate(["Hello and welcome.", "The quick brown fox."], "en", "es",
                                    beams=1)) == 2
    assert translator.tokenizer.src_lang == "eng_Latn"
