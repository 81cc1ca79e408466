"""Translation through the production loader, on a tiny random-weight MarianMT model."""

from __future__ import annotations

from pathlib import Path

import pytest
from octavia.errors import Reason

from server.engine import EngineError
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
