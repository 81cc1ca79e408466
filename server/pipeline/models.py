"""Loaded models, shared by every job of the process, and where they run.

Loading a model costs seconds to minutes, so each is loaded once and kept in an LRU
cache bounded by `max_resident_models`. Two jobs asking for the same model at once
wait for one load. Evicting only drops the cache's reference: a job still using the
model keeps it alive until it finishes.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from octavia.errors import Reason

from ..engine import EngineError


@dataclass(frozen=True)
class Device:
    """Where inference runs, and in which precision each library should load its weights."""

    name: str
    """`cpu` or `cuda`."""

    @property
    def is_cuda(self) -> bool:
        return self.name == "cuda"

    @property
    def whisper_compute_type(self) -> str:
        return "float16" if self.is_cuda else "int8"


def resolve_device(setting: str) -> Device:
    """`auto` becomes CUDA when torch sees a GPU, else the CPU."""
    if setting == "auto":
        import torch

        return Device("cuda" if torch.cuda.is_available() else "cpu")
    return Device(setting)


def apply_offline_mode(offline: bool) -> None:
    """Keep the hub clients from reaching the network; loaders also pass local_files_only."""
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"


def is_local_path(name: str) -> bool:
    return Path(name).expanduser().exists()


@dataclass
class Resident:
    """A loaded model and the lock that serialises calls into libraries that aren't thread-safe."""

    model: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


class ModelCache:
    """A thread-safe LRU of loaded models, keyed by what was loaded and how."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple[str, ...], Resident] = OrderedDict()
        self._loading: dict[tuple[str, ...], threading.Lock] = {}

    def get(self, key: tuple[str, ...], load: Callable[[], Any]) -> Resident:
        """The model under `key`, loading it with `load()` on first use."""
        with self._lock:
            resident = self._lookup(key)
            if resident is not None:
                return resident
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                resident = self._lookup(key)
                if resident is not None:
                    return resident
            resident = Resident(load())
            with self._lock:
                self._models[key] = resident
                self._models.move_to_end(key)
                while len(self._models) > self._capacity:
                    self._models.popitem(last=False)
                self._loading.pop(key, None)
            return resident

    def keys(self) -> list[tuple[str, ...]]:
        """Resident keys, least recently used first."""
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def _lookup(self, key: tuple[str, ...]) -> Resident | None:
        resident = self._models.get(key)
        if resident is not None:
            self._models.move_to_end(key)
        return resident


def _has_files(name: str) -> bool:
    folder = Path(name)
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


def model_missing(kind: str, name: str, setting: str, *, offline: bool,
                  cause: BaseException | None = None) -> EngineError:
    """The error for a model that can't be loaded, saying how to provide it."""
    how = (
        f"pre-download it into the cache or point OCTAVIA_{setting.upper()} at a local folder, "
        "or turn offline mode off (OCTAVIA_OFFLINE=false)"
        if offline
        else f"check the name, make sure the model hub is reachable, or point "
        f"OCTAVIA_{setting.upper()} at a local folder"
    )
    detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return EngineError(
        f"The {kind} model '{name}' is not available: {how}.{detail}",
        reason=Reason.MODEL_MISSING,
    )


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError, or a backend's "out of memory" RuntimeError."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def load_or_missing(load: Callable[[], Any], *, kind: str, name: str, setting: str,
                    offline: bool) -> Any:
    """Run a loader, turning "not found / can't fetch" failures into MODEL_MISSING."""
    try:
        return load()
    except EngineError:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise
        if _has_files(name):  # it is there, but does not load
            raise EngineError(
                f"The {kind} model in '{name}' is there but could not be loaded; its files "
                f"may be corrupt or incomplete: download it again or point "
                f"OCTAVIA_{setting.upper()} at a good copy. ({type(exc).__name__}: {exc})",
                reason=Reason.MODEL_CORRUPT) from exc
        raise model_missing(kind, name, setting, offline=offline, cause=exc) from exc
