"""Side-by-side speed of the libraries the engine picked against their reference.

Each comparison runs both sides on the same input in the same process, alternating,
after one untimed warm-up call each; the best of `repeats` is kept (a shared machine's
noise only ever adds time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Speed:
    name: str
    seconds: float
    tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def best_of(repeats: int, runs: dict[str, Callable[[], int]]) -> list[Speed]:
    """Time each run (it returns tokens produced) `repeats` times, interleaved; keep the best."""
    for run in runs.values():
        run()
    best: dict[str, tuple[float, int]] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            tokens = run()
            elapsed = time.perf_counter() - started
            if name not in best or elapsed < best[name][0]:
                best[name] = (elapsed, tokens)
    return [Speed(name, *best[name]) for name in runs]


def translation(model: Path, texts: Sequence[str], *, cache: Path, batch_size: int = 8,
                beams: int = 4, repeats: int = 3) -> list[Speed]:
    """transformers vs CTranslate2 (int8 and float32) on one Marian/NLLB checkpoint."""
    from server.pipeline.models import Device
    from server.pipeline.translate import load_translator

    device = Device("cpu")
    backends = {
        "transformers fp32": load_translator(str(model), device, offline=True, setting="bench",
                                             backend="transformers"),
        "ctranslate2 int8": load_translator(str(model), device, offline=True, setting="bench",
                                            backend="ctranslate2", cache_root=cache),
        "ctranslate2 fp32": load_translator(str(model), device, offline=True, setting="bench",
                                            backend="ctranslate2", cache_root=cache,
                                            compute_type="float32"),
    }
    counters = {name: _count_tokens(t) for name, t in backends.items()}

    def run(name: str) -> Callable[[], int]:
        def go() -> int:
            counters[name][0] = 0
            for start in range(0, len(texts), batch_size):
                backends[name].translate(texts[start:start + batch_size], "en", "es",
                                         beams=beams)
            return counters[name][0]
        return go

    return best_of(repeats, {name: run(name) for name in backends})


class _CountingCt2:
    """Counts the tokens a CTranslate2 translator generates (the extension can't be patched)."""

    def __init__(self, model: Any, counter: list[int]) -> None:
        self._model, self._counter = model, counter

    def translate_batch(self, *args: Any, **kwargs: Any) -> Any:
        results = self._model.translate_batch(*args, **kwargs)
        self._counter[0] += sum(len(r.hypotheses[0]) for r in results)
        return results


def _count_tokens(translator: Any) -> list[int]:
    """Make `translator` count generated tokens (no special ones) into the returned cell."""
    counter = [0]
    if hasattr(translator, "folder"):  # CTranslate2
        translator.model = _CountingCt2(translator.model, counter)
        return counter
    generate = translator.model.generate
    special = set(translator.tokenizer.all_special_ids)

    def counting(**kwargs: Any) -> Any:
        out = generate(**kwargs)
        counter[0] += sum(1 for row in out.tolist() for token in row if token not in special)
        return out

    translator.model.generate = counting
    return counter


def whisper(folder: Path, audio: np.ndarray, *, max_new_tokens: int = 96,
            repeats: int = 2) -> list[Speed]:
    """faster-whisper vs transformers' Whisper on the same random tiny.en-shaped model.

    Both decode greedily (temperature 0), without timestamps, one 30 s window at a time,
    to at most `max_new_tokens` per window.
    """
    import torch
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from bench._whisper_pair import build_pair

    hf, ct2 = build_pair(folder)
    processor = WhisperProcessor.from_pretrained(hf)
    reference = WhisperForConditionalGeneration.from_pretrained(hf).eval()
    windows = [audio[i:i + 16_000 * 30] for i in range(0, audio.size, 16_000 * 30)]

    def transformers_run() -> int:
        tokens = 0
        for window in windows:
            features = processor(window, sampling_rate=16_000, return_tensors="pt")
            with torch.inference_mode():
                out = reference.generate(features.input_features, max_new_tokens=max_new_tokens,
                                         num_beams=1, do_sample=False)
            tokens += int(out.shape[1])
        return tokens

    def faster_run(model: object) -> Callable[[], int]:
        def go() -> int:
            tokens = 0
            for window in windows:
                segments, _ = model.transcribe(  # type: ignore[attr-defined]
                    window, language="en", beam_size=1, temperature=0.0,
                    without_timestamps=True, vad_filter=False,
                    condition_on_previous_text=False, max_new_tokens=max_new_tokens)
                tokens += sum(len(s.tokens) for s in segments)
            return tokens
        return go

    return best_of(repeats, {
        "transformers fp32": transformers_run,
        "faster-whisper fp32": faster_run(WhisperModel(str(ct2), device="cpu",
                                                       compute_type="float32")),
        "faster-whisper int8": faster_run(WhisperModel(str(ct2), device="cpu",
                                                       compute_type="int8")),
    })


def thread_scaling(asr: Path, audio: np.ndarray, marian: Path, texts: Sequence[str],
                   voice: Path, *, cores: int, repeats: int = 3) -> dict[str, list[Speed]]:
    """Each stage's library on 1 thread vs `cores` threads, same work, alternating.

    Whisper (CTranslate2 `cpu_threads`) transcribes `audio` as a job does; the Marian
    (CTranslate2 `intra_threads`) translates `texts` one at a time; the voice (torch
    threads, set in the calling thread as the engine does) speaks the translations.
    `tokens` is 1 per run: compare seconds.
    """
    from faster_whisper import WhisperModel

    from server.pipeline.models import Device
    from server.pipeline.synthesize import load_voice, torch_threads
    from server.pipeline.translate import load_translator

    cpu, counts = Device("cpu"), (1, cores)
    whispers = {n: WhisperModel(str(asr), device="cpu", compute_type="int8", cpu_threads=n)
                for n in counts}
    marians = {n: load_translator(str(marian), cpu, offline=True, setting="bench",
                                  backend="ctranslate2", cpu_threads=n) for n in counts}
    spoken = [marians[1].translate([text], "en", "es")[0] for text in texts]
    speaker = load_voice(str(voice), cpu, offline=True)

    def transcribe(n: int) -> Callable[[], int]:
        def go() -> int:
            segments, _ = whispers[n].transcribe(
                audio, language="en", beam_size=5, temperature=0.0, vad_filter=True,
                word_timestamps=True, condition_on_previous_text=False)
            return len(list(segments)) and 1
        return go

    def translate(n: int) -> Callable[[], int]:
        def go() -> int:
            for text in texts:
                marians[n].translate([text], "en", "es")
            return 1
        return go

    def speak(n: int) -> Callable[[], int]:
        def go() -> int:
            with torch_threads(n):
                for text in spoken:
                    speaker.speak(text, "es")
            return 1
        return go

    return {stage: best_of(repeats, {f"{n} thread{'s' * (n > 1)}": run(n) for n in counts})
            for stage, run in (("transcribe", transcribe), ("translate", translate),
                               ("speak", speak))}
