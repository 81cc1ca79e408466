"""Marian/NLLB translation through CTranslate2, converted once from the transformers checkpoint.

The conversion takes seconds (minutes for NLLB) and its result depends only on the
source checkpoint and the quantization, so it is cached: inside a writable local model
folder (`<model>/ctranslate2-<quantization>/`), else under `<data_dir>/models/ctranslate2/`
(hub models, read-only folders). A fingerprint of the source files stored with the
conversion makes a changed checkpoint convert again. A conversion is written to a temp
folder and renamed into place, so concurrent loaders never read half a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import Device

log = logging.getLogger(__name__)

FINGERPRINT = "octavia-source.json"
SOURCE_FILES = re.compile(r".*\.(json|safetensors|bin|spm|model|txt)$")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.spm", "*.model", "*.txt", "pytorch_model.bin"]


def compute_type(device: Device, requested: str | None) -> str:
    """int8 on CPU (CTranslate2's fast path for OPUS-MT), float16 on CUDA, unless asked."""
    if requested:
        return requested
    return "int8_float16" if device.is_cuda else "int8"


def quantization_for(kind: str) -> str | None:
    """What to store on disk: int8 kinds quantize at conversion, others keep float32."""
    return "int8" if kind.startswith("int8") else None


def source_folder(name: str, *, offline: bool) -> Path:
    """A local folder holding the checkpoint: the path itself or its hub snapshot."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, local_files_only=offline, allow_patterns=HUB_PATTERNS))


def fingerprint(folder: Path) -> dict[str, list[int]]:
    """Size and mtime of each checkpoint file; a changed checkpoint gets a new conversion."""
    found: dict[str, list[int]] = {}
    for item in sorted(folder.iterdir()):
        if item.is_file() and SOURCE_FILES.match(item.name) and item.name != FINGERPRINT:
            stat = item.stat()
            found[item.name] = [stat.st_size, stat.st_mtime_ns]
    return found


def cache_folder(source: Path, name: str, quantization: str | None, cache_root: Path) -> Path:
    """Beside the model when its folder is writable, else under `cache_root`."""
    label = f"ctranslate2-{quantization or 'float32'}"
    if Path(name).expanduser().exists() and os.access(source, os.W_OK):
        return source / label
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/"))[-80:]
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    return cache_root / f"{slug}-{digest}" / label


def convert(source: Path, target: Path, quantization: str | None) -> None:
    """Run CTranslate2's transformers converter (the slow step the cache exists to skip)."""
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(source)).convert(str(target), quantization=quantization,
                                               force=True)


def converted(source: Path, name: str, quantization: str | None, cache_root: Path) -> Path:
    """The cached conversion of `source`, converting first when it is missing or stale."""
    target = cache_folder(source, name, quantization, cache_root)
    wanted = fingerprint(source)
    stamp = target / FINGERPRINT
    if stamp.exists() and json.loads(stamp.read_text(encoding="utf-8")) == wanted:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        log.info("converting %s to CTranslate2 (%s) in %s", name, quantization, target)
        convert(source, scratch / "model", quantization)
        (scratch / "model" / FINGERPRINT).write_text(json.dumps(wanted), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            (scratch / "model").rename(target)
        except OSError:
            if not (target / FINGERPRINT).exists():  # lost a race to another loader: fine
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


@dataclass
class Ct2Translator:
    """A CTranslate2 seq2seq model with the checkpoint's own transformers tokenizer.

    Same interface and same decoding budget as `translate.Translator`, so either backend
    can serve a job; `translate` is not thread-safe (NLLB's tokenizer keeps `src_lang`).
    """

    name: str
    kind: str
    tokenizer: Any
    model: Any
    device: Device
    folder: Path

    def translate(self, texts: Sequence[str], source: str, target: str, *,
                  beams: int = 4) -> list[str]:
        from .translate import decoding_budget, nllb_code

        prefix: list[list[str]] | None = None
        if self.kind == "nllb":
            self.tokenizer.src_lang = nllb_code(source)
            prefix = [[nllb_code(target)]] * len(texts)
        ids = self.tokenizer(list(texts), truncation=True)["input_ids"]
        tokens = [self.tokenizer.convert_ids_to_tokens(row) for row in ids]
        budget = decoding_budget(max(len(row) for row in ids))
        results = self.model.translate_batch(
            tokens, target_prefix=prefix, beam_size=beams, max_batch_size=0,
            # transformers spends its last step on the forced </s>; CTranslate2 doesn't.
            max_decoding_length=budget - 1 if self.kind == "marian" else budget)
        out = []
        for result in results:
            hypothesis = result.hypotheses[0][1 if prefix else 0:]
            text = self.tokenizer.decode(self.tokenizer.convert_tokens_to_ids(hypothesis),
                                         skip_special_tokens=True)
            out.append(text.strip())
        return out


def load_ct2_translator(name: str, device: Device, *, offline: bool, cache_root: Path,
                        compute: str | None = None, cpu_threads: int = 0) -> Ct2Translator:
    """Convert (once) and load `name`; raises whatever the converter or loader raises."""
    import ctranslate2
    from transformers import AutoTokenizer

    source = source_folder(name, offline=offline)
    kind = "nllb" if _model_type(source) == "m2m_100" else "marian"
    precision = compute_type(device, compute)
    folder = converted(source, name, quantization_for(precision), cache_root)
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    model = ctranslate2.Translator(str(folder), device=device.name, compute_type=precision,
                                   intra_threads=cpu_threads)
    return Ct2Translator(name=name, kind=kind, tokenizer=tokenizer, model=model, device=device,
                         folder=folder)


def _model_type(folder: Path) -> str:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return str(config.get("model_type", ""))
