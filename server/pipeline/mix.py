"""Laying fitted lines on a timeline and mixing them with the original audio."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from octavia.errors import Reason

from ..engine import EngineError
from ..jobs import MixMode
from .models import Device


def place(lines: Sequence[tuple[float, np.ndarray]], length: int, sample_rate: int) -> np.ndarray:
    """A silent track of `length` samples with each (start_seconds, samples) line added in."""
    track = np.zeros(length, np.float32)
    for start_seconds, samples in lines:
        at = min(round(start_seconds * sample_rate), length)
        end = min(at + samples.size, length)
        track[at:end] += samples[:end - at]
    return track


def duck_envelope(spans: Sequence[tuple[float, float]], length: int, sample_rate: int, *,
                  gain: float, ramp_seconds: float) -> np.ndarray:
    """Gain per sample: 1 outside `spans`, `gain` inside, with linear ramps between."""
    active = np.zeros(length, np.float32)
    for start, end in spans:
        active[int(start * sample_rate):int(end * sample_rate)] = 1.0
    ramp = max(int(ramp_seconds * sample_rate), 1)
    # A moving average over a cumulative sum: O(n) however long the ramp.
    padded = np.concatenate([np.zeros(ramp, np.float32), active, np.zeros(ramp, np.float32)])
    cumulative = np.cumsum(padded, dtype=np.float64)
    smooth = (cumulative[2 * ramp:] - cumulative[:-2 * ramp]) / (2 * ramp)
    smooth = np.clip(smooth[:length], 0.0, 1.0).astype(np.float32)
    return 1.0 - (1.0 - gain) * smooth


def mix(original: np.ndarray, dub: np.ndarray, *, mode: str,
        spans: Sequence[tuple[float, float]], sample_rate: int, duck_gain: float,
        ramp_seconds: float, background: np.ndarray | None = None) -> np.ndarray:
    """The final mono track for `mode` (see `MixMode`), normalised so it never clips."""
    if mode == MixMode.DUB_ONLY:
        out = dub.copy()
    elif mode == MixMode.DUCKED:
        envelope = duck_envelope(spans, original.size, sample_rate, gain=duck_gain,
                                 ramp_seconds=ramp_seconds)
        out = original * envelope + dub
    elif mode == MixMode.SEPARATED:
        if background is None:
            raise EngineError("The separated mix needs the separated background track.")
        out = background[:dub.size] + dub
    else:
        raise EngineError(f"Unknown mix mode '{mode}'.", reason=Reason.INVALID_ARGUMENT)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0.99:
        out = out * (0.99 / peak)
    return out.astype(np.float32, copy=False)


def require_separation(mode: str, separation_model: str | None) -> None:
    """Fail before any work when `separated` is asked for without a model to do it."""
    if mode == MixMode.SEPARATED and not separation_model:
        raise EngineError(
            "The 'separated' mix mode needs a source-separation model: set "
            "OCTAVIA_SEPARATION_MODEL (e.g. htdemucs) or choose the 'ducked' or 'dub_only' mode.",
            reason=Reason.MODEL_MISSING,
        )


def load_separator(name: str, device: Device, *, offline: bool) -> object:
    """A Demucs model by name; Demucs is an optional install."""
    from .models import load_or_missing

    def load() -> object:
        from demucs.pretrained import get_model  # type: ignore[import-not-found]

        model = get_model(name)
        model.eval()
        return model.to(device.name)

    return load_or_missing(load, kind="source separation", name=name,
                           setting="separation_model", offline=offline)


def separate_background(model: object, original: np.ndarray, sample_rate: int,
                        device: Device) -> np.ndarray:
    """Everything but the vocals of `original`, as mono at `sample_rate`."""
    import torch
    from demucs.apply import apply_model  # type: ignore[import-not-found]

    from ._audio import resample

    model_rate = int(model.samplerate)  # type: ignore[attr-defined]
    audio = resample(original, sample_rate, model_rate)
    channels = int(model.audio_channels)  # type: ignore[attr-defined]
    wave = torch.from_numpy(np.tile(audio, (channels, 1)))[None]
    with torch.inference_mode():
        stems = apply_model(model, wave, device=device.name)[0]  # (sources, channels, time)
    sources = list(model.sources)  # type: ignore[attr-defined]
    keep = [i for i, source in enumerate(sources) if source != "vocals"]
    background = stems[keep].sum(dim=0).mean(dim=0).cpu().numpy()
    result = resample(background.astype(np.float32), model_rate, sample_rate)
    if result.size < original.size:
        result = np.concatenate([result, np.zeros(original.size - result.size, np.float32)])
    return result[:original.size]
