"""Text to speech with Coqui TTS, one voice model per target language."""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .models import Device, load_or_missing, model_missing


@dataclass
class Voice:
    """A loaded Coqui TTS model and how to call it for one language."""

    name: str
    tts: Any
    sample_rate: int

    def speak(self, text: str, language: str) -> np.ndarray:
        """Mono float32 speech for `text`. Not thread-safe: callers hold the model's lock."""
        if not any(char.isalnum() for char in text):
            return np.zeros(0, np.float32)  # nothing to say; VITS fails on empty input
        kwargs: dict[str, Any] = {}
        if self.tts.is_multi_lingual:
            kwargs["language"] = language
        if self.tts.is_multi_speaker and self.tts.speakers:
            kwargs["speaker"] = self.tts.speakers[0]
        # Coqui prints sentence splits and timings to stdout; keep the server's output clean.
        with quiet_stdout():
            wav = self.tts.tts(text=text, split_sentences=True, **kwargs)
        return np.asarray(wav, dtype=np.float32).reshape(-1)


_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_stdout: Any = None


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence stdout while any thread is inside; safe when voice workers overlap.

    `contextlib.redirect_stdout` swaps the process-wide `sys.stdout` and restores what it
    saw, so two threads interleaving it can leave stdout pointing at a dead buffer.
    """
    global _quiet_depth, _saved_stdout
    with _quiet_lock:
        if _quiet_depth == 0:
            _saved_stdout, sys.stdout = sys.stdout, io.StringIO()
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                sys.stdout, _saved_stdout = _saved_stdout, None


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run this thread's torch ops on `count` intra-op threads (0 changes nothing).

    torch keeps the count per thread once a thread has used it, but also as the default
    for threads that have not yet: restoring it on the way out keeps an overlapped
    job's share from leaking into other jobs' threads.
    """
    if count <= 0:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def voice_name(voices: dict[str, str], fallback: str, language: str) -> str:
    return voices.get(language) or fallback


def load_voice(name: str, device: Device, *, offline: bool) -> Voice:
    """A voice from a Coqui model name or a local folder holding model.pth and config.json."""
    from TTS.api import TTS

    folder = Path(name).expanduser()
    if folder.is_dir():
        checkpoint = _checkpoint_in(folder)
        config = folder / "config.json"
        if checkpoint is None or not config.exists():
            raise model_missing("speech synthesis", name, "tts_voices", offline=offline,
                                cause=FileNotFoundError(f"no model.pth/config.json in {folder}"))

        def load() -> Any:
            return TTS(model_path=str(checkpoint), config_path=str(config), progress_bar=False)
    else:
        if offline and not _is_downloaded(name):
            raise model_missing("speech synthesis", name, "tts_voices", offline=True)

        def load() -> Any:
            return TTS(model_name=name, progress_bar=False)

    with quiet_stdout():
        tts = load_or_missing(load, kind="speech synthesis", name=name, setting="tts_voices",
                              offline=offline)
        if device.is_cuda:
            tts = tts.to("cuda")
    return Voice(name=name, tts=tts, sample_rate=int(tts.synthesizer.output_sample_rate))


def _checkpoint_in(folder: Path) -> Path | None:
    for candidate in ("model.pth", "model_file.pth", "checkpoint.pth", "best_model.pth"):
        if (folder / candidate).exists():
            return folder / candidate
    return None


def _is_downloaded(name: str) -> bool:
    from TTS.utils.manage import ModelManager

    try:
        _item, full_name, _model = ModelManager(progress_bar=False)._set_model_item(name)
    except Exception:
        return False
    return bool((ModelManager(progress_bar=False).output_prefix / full_name).is_dir())
