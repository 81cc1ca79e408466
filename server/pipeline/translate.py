"""Text translation with seq2seq models: MarianMT per pair, NLLB-200 otherwise.

Two backends serve the same checkpoints: CTranslate2 (the default: converted once, int8
on CPU, see `_ct2`) and transformers, kept as the reference. transformers 5 dropped the
`translation` pipeline task, so the reference drives the tokenizer and `generate` directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from octavia.errors import Reason

from ..engine import EngineError
from ._nllb_codes import NLLB_CODES
from .models import Device, is_out_of_memory, load_or_missing

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 512

Backend = Literal["ctranslate2", "transformers"]


class TextTranslator(Protocol):
    """What a job needs of a loaded translation model, whichever backend runs it."""

    name: str
    kind: str

    def translate(self, texts: Sequence[str], source: str, target: str, *,
                  beams: int = 4) -> list[str]:
        """Translate one batch; not thread-safe."""


def decoding_budget(longest_input: int) -> int:
    """Most tokens a batch may generate: room for a wordy translation, not for a loop."""
    return min(MAX_NEW_TOKENS, 2 * longest_input + 16)


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
                max_new_tokens=decoding_budget(longest),
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


def load_translator(name: str, device: Device, *, offline: bool, setting: str,
                    backend: Backend = "transformers", cache_root: Path | None = None,
                    compute_type: str | None = None, cpu_threads: int = 0) -> TextTranslator:
    """Load a Marian or NLLB checkpoint from the hub cache or a local folder.

    With `backend="ctranslate2"` the checkpoint is converted once (cached under
    `cache_root` unless its folder is writable); a checkpoint CTranslate2 can't convert
    falls back to transformers with a warning rather than failing the job.
    """
    if backend == "ctranslate2":
        from . import _ct2

        load_or_missing(lambda: _ct2.source_folder(name, offline=offline),
                        kind="translation", name=name, setting=setting, offline=offline)
        try:
            return _ct2.load_ct2_translator(
                name, device, offline=offline, cache_root=cache_root or Path("."),
                compute=compute_type, cpu_threads=cpu_threads)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            log.warning("CTranslate2 can't serve %s (%s: %s); using transformers",
                        name, type(exc).__name__, exc)
    return _load_transformers(name, device, offline=offline, setting=setting)


def _load_transformers(name: str, device: Device, *, offline: bool, setting: str) -> Translator:
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
