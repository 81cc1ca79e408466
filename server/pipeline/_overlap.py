"""Transcribe, translate and voice at once: each segment moves on as soon as it is ready.

    job thread ──waits, polls cancel──────────────────────────────────────────┐
    transcriber ─segments─▶ [queue] ─▶ translator ─batches─▶ [queue] ─▶ voice workers (n)
                 (Whisper, lazily)      (takes what is       (one TTS instance each)
                                         waiting, ≤ batch)

The queues are bounded so a fast stage runs at most `queue_size` segments ahead of a
slow one. A job's wall time approaches its slowest stage instead of the sum of all
three. Progress goes through `ProgressBoard` (see its docstring for how one phase is
reported while three stages run).

Resuming (see `checkpoints`): the stream may replay a saved transcript, `reuse_translation`
gives a saved target text (only the rest is sent to the model), and a speaker may load a
saved line instead of voicing it; `on_transcribed` and `on_translated` hand each stage's
complete output to the job to save.

Failure and cancellation: the first error in any thread stops the others (they check a
stop flag between units of work) and is raised in the job thread, which also polls
`check_cancelled` every 0.1 s. The job thread does not wait for a thread that is inside
a unit of work (one Whisper window, one translation batch, one voiced line): it
returns at once and the thread exits when that unit ends, holding only model locks.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np

from ..engine import EngineError
from ..jobs import Phase
from ._progress import ProgressBoard
from .media import format_clock
from .transcribe import Segment, TranscriptStream, no_speech

Translate = Callable[[list[str]], list[str]]
Speak = Callable[[int, str], np.ndarray]
"""Voice segment `index`'s target text."""
ReuseTranslation = Callable[[int, Segment], str | None]
OnStageDone = Callable[[list[Segment]], None]
Guard = Callable[[str], AbstractContextManager[None]]

POLL = 0.1


class _End:
    """Marks the end of a queue's work."""


END = _End()


@dataclass
class Overlapped:
    """What the overlapped stages produced, in segment order."""

    segments: list[Segment]
    speech: list[np.ndarray]
    busy: dict[str, float] = field(default_factory=dict)
    """Seconds each stage spent working (not waiting), per worker, for the speed book."""


class Overlap:
    """Runs one job's three stages in threads connected by bounded queues."""

    def __init__(self, stream: TranscriptStream, *,
                 load_translate: Callable[[], Translate | None],
                 load_speakers: list[Callable[[], Speak]], board: ProgressBoard, guard: Guard,
                 check_cancelled: Callable[[], None], batch_size: int,
                 queue_size: int, reuse_translation: ReuseTranslation | None = None,
                 on_transcribed: OnStageDone | None = None,
                 on_translated: OnStageDone | None = None) -> None:
        self._stream = stream
        self._load_translate = load_translate
        self._translate: Translate | None = None
        self._load_speakers = load_speakers
        self._workers = len(load_speakers)
        self._board = board
        self._guard = guard
        self._check_cancelled = check_cancelled
        self._batch_size = max(batch_size, 1)
        self._reuse_translation = reuse_translation
        self._on_transcribed = on_transcribed
        self._on_translated = on_translated
        self._to_translate: queue.Queue[int | _End] = queue.Queue(maxsize=queue_size)
        self._to_voice: queue.Queue[int | _End] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._errors: list[BaseException] = []
        self._running = 0
        self.segments: list[Segment] = []
        self._speech: dict[int, np.ndarray] = {}
        self._transcribed_until = 0.0
        self._transcribed_all = False
        self._translated = 0
        self._voiced_prefix = 0
        self._busy = {"transcribe": 0.0, "translate": 0.0, "synthesize": 0.0}

    def run(self) -> Overlapped:
        """Run to the end, or raise the first failure (or JobCancelled) promptly."""
        workers = [("transcription", self._transcribe), ("translation", self._translate_all)]
        workers += [("speech synthesis", self._voice_worker(load))
                    for load in self._load_speakers]
        self._running = len(workers)
        try:
            for name, body in workers:
                threading.Thread(target=self._thread, args=(name, body), daemon=True,
                                 name=f"octavia-{name.replace(' ', '-')}").start()
            while True:
                self._wake.wait(POLL)
                self._wake.clear()
                with self._lock:
                    if self._errors:
                        raise self._errors[0]
                    if self._running == 0:
                        break
                self._check_cancelled()
        finally:
            self._stop.set()
        self._busy["synthesize"] /= self._workers
        return Overlapped(self.segments, [self._speech[i] for i in range(len(self.segments))],
                          self._busy)

    # --- Threads ---------------------------------------------------------------------

    def _thread(self, name: str, body: Callable[[], None]) -> None:
        try:
            with self._guard(name):
                body()
        except BaseException as exc:
            with self._lock:
                self._errors.append(exc)
            self._stop.set()
        finally:
            with self._lock:
                self._running -= 1
            self._wake.set()

    def _transcribe(self) -> None:
        pieces = self._stream.pieces
        for segment, done in self._timed(pieces, "transcribe"):
            if self._stop.is_set():
                return
            with self._lock:
                self._transcribed_until = done
                if segment is not None:
                    self.segments.append(segment)
            if segment is not None and not self._put(self._to_translate,
                                                     len(self.segments) - 1):
                return
            self._report_transcription()
        if not self.segments:
            raise no_speech()
        with self._lock:
            self._transcribed_all = True
        if self._on_transcribed is not None:
            self._on_transcribed(list(self.segments))
        self._report_transcription()
        self._put(self._to_translate, END)

    def _translate_all(self) -> None:
        self._translate = self._load_translate()  # loads while Whisper already decodes
        finished = False
        while not finished:
            batch = [self._get(self._to_translate)]
            while len(batch) < self._batch_size and not isinstance(batch[-1], _End):
                try:
                    batch.append(self._to_translate.get_nowait())
                except queue.Empty:
                    break
            finished = isinstance(batch[-1], _End)
            indexes = [i for i in batch if not isinstance(i, _End)]
            if self._stop.is_set():
                return
            if indexes:
                self._translate_batch(indexes)
                for index in indexes:
                    if not self._put(self._to_voice, index):
                        return
            self._report_translation()
        if self._on_translated is not None and not self._stop.is_set():
            self._on_translated(list(self.segments))
        for _ in range(self._workers):
            self._put(self._to_voice, END)

    def _translate_batch(self, indexes: list[int]) -> None:
        missing = []
        for index in indexes:
            saved = (None if self._reuse_translation is None
                     else self._reuse_translation(index, self.segments[index]))
            if saved is None:
                missing.append(index)
            else:
                self.segments[index].translation = saved
        texts = [self.segments[i].text for i in missing]
        started = time.perf_counter()
        out = texts if self._translate is None or not texts else self._translate(texts)
        self._busy["translate"] += time.perf_counter() - started
        if len(out) != len(texts):
            raise EngineError("The translation model returned a wrong number of sentences.")
        for index, text in zip(missing, out, strict=True):
            self.segments[index].translation = text
        with self._lock:
            self._translated += len(indexes)

    def _voice_worker(self, load: Callable[[], Speak]) -> Callable[[], None]:
        def work() -> None:
            speak = load()
            while not isinstance(index := self._get(self._to_voice), _End):
                if self._stop.is_set():
                    return
                started = time.perf_counter()
                speech = speak(index, self.segments[index].translation)
                with self._lock:
                    self._busy["synthesize"] += time.perf_counter() - started
                    self._speech[index] = speech
                    while self._voiced_prefix in self._speech:
                        self._voiced_prefix += 1
                self._report_synthesis()

        return work

    # --- Progress: each stage's position in media time (see _progress) ---------------

    def _report_transcription(self) -> None:
        duration = self._stream.duration
        with self._lock:
            done = duration if self._transcribed_all else self._transcribed_until
            note = (f"Transcribed {len(self.segments)} segments" if self._transcribed_all
                    else f"Transcribing {format_clock(done)} / {format_clock(duration)}")
        self._board.advance(Phase.TRANSCRIBING, _fraction(done, duration), note)

    def _report_translation(self) -> None:
        with self._lock:
            position = self._position(self._translated)
            count = self._translated
        note = (f"translated {count} segments" if self._translate is not None
                else "Source and target language match: nothing to translate")
        self._board.advance(Phase.TRANSLATING, _fraction(position, self._stream.duration), note)

    def _report_synthesis(self) -> None:
        with self._lock:
            position = min(self._position(self._voiced_prefix), self._position(self._translated))
            voiced = len(self._speech)
            total = f" of {len(self.segments)}" if self._transcribed_all else ""
        self._board.advance(Phase.SYNTHESIZING, _fraction(position, self._stream.duration),
                            f"voiced {voiced}{total} segments")

    def _position(self, finished: int) -> float:
        """Media time up to which a stage that finished the first `finished` segments is done."""
        if finished < len(self.segments):
            return self.segments[finished].start
        return self._stream.duration if self._transcribed_all else self._transcribed_until

    # --- Queues that give up when the job stops ----------------------------------------

    def _put(self, into: queue.Queue[int | _End], item: int | _End) -> bool:
        while not self._stop.is_set():
            try:
                into.put(item, timeout=POLL)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, source: queue.Queue[int | _End]) -> int | _End:
        while not self._stop.is_set():
            try:
                return source.get(timeout=POLL)
            except queue.Empty:
                continue
        return END

    def _timed(self, items: Iterator[tuple[Segment | None, float]],
               stage: str) -> Iterator[tuple[Segment | None, float]]:
        """Iterate, adding the time spent producing each item to the stage's busy time."""
        while True:
            started = time.perf_counter()
            item = next(items, None)
            self._busy[stage] += time.perf_counter() - started
            if item is None:
                return
            yield item


def _fraction(position: float, duration: float) -> float:
    return min(position / duration, 1.0) if duration > 0 else 1.0
