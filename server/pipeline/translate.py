"""Text translation with transformers seq2seq models: MarianMT per pair, NLLB-200 otherwise.

transformers 5 dropped the `translation` pipeline task, so this drives the tokenizer and
`generate` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octavia.errors import Reason

from ..engine import EngineError
from ._nllb_codes import NLLB_CODES
from .models import Device, load_or_missing

MAX_NEW_TOKENS = 512


@dataclass
class Translator:
    """A loaded seq2seq model and its tokenizer; `kind` is `marian` or `nllb`."""

    name: str
    kind: str
    tokenizer: Any
    model: Any
    device: Device

    def translate(self, texts: Sequence[str], source: str, target: str, *,
                  beams: int = 4) -> list[str]:
        """Translate one batch. Not thread-safe (NLLB's tokenizer keeps `src_lang`)."""
        import torch

        extra: dict[str, Any] = {}
        if self.kind == "nllb":
            self.tokenizer.src_lang = nllb_code(source)
            extra["forced_bos_token_id"] = self.tokenizer.convert_tokens_to_ids(
                nllb_code(target))
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True)
        batch = {key: value.to(self.device.name) for key, value in batch.items()}
        longest = int(batch["input_ids"].shape[1])
        with torch.inference_mode():
            output = self.model.generate(
                **batch,
                num_beams=beams,
                do_sample=False,
                max_new_tokens=min(MAX_NEW_TOKENS, 2 * longest + 16),
                **extra,
            )
        return [text.strip() for text in
                self.tokenizer.batch_decode(output, skip_special_tokens=True)]


def nllb_code(language: str) -> str:
    try:
        return NLLB_CODES[language]
    except KeyError:
        raise EngineError(
            f"Translation to or from '{language}' is not supported.",
            reason=Reason.UNSUPPORTED_LANGUAGE,
        ) from None


def pair_model_name(template: str, source: str, target: str) -> str:
    """The pair model for a template like `Helsinki-NLP/opus-mt-{src}-{tgt}`, or a fixed one."""
    return template.format(src=source, tgt=target)


def load_translator(name: str, device: Device, *, offline: bool, setting: str) -> Translator:
    """Load a Marian or NLLB checkpoint from the hub cache or a local folder."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    source = str(Path(name).expanduser()) if Path(name).expanduser().exists() else name

    def load() -> Translator:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        model = AutoModelForSeq2SeqLM.from_pretrained(source, local_files_only=offline)
        model.eval()
        if device.is_cuda:
            model = model.half().to("cuda")
        kind = "nllb" if model.config.model_type == "m2m_100" else "marian"
        return Translator(name=name, kind=kind, tokenizer=tokenizer, model=model, device=device)

    translator: Translator = load_or_missing(load, kind="translation", name=name, setting=setting,
                                             offline=offline)
    return translator


def translate_all(
    translate_batch: Callable[[Sequence[str]], list[str]],
    texts: Sequence[str],
    *,
    batch_size: int,
    on_batch: Callable[[int], None],
) -> list[str]:
    """Translate `texts` in batches; `on_batch(done)` runs after each (and may raise to stop)."""
    results: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        translated = translate_batch(batch)
        if len(translated) != len(batch):
            raise EngineError("The translation model returned a wrong number of sentences.")
        results.extend(translated)
        on_batch(len(results))
    return results
