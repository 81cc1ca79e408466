"""Stage outputs kept as job checkpoints, so a job run again resumes where it stopped.

A worker may be killed mid-job; another worker then runs the job again with a fresh
process. Each stage saves what it produced through `JobContext.checkpoints()` and, on a
re-run, loads what exists and computes only what is missing:

- `transcript.json`: the transcript (segments with timings and words, detected language,
  language probability, duration), saved once transcription completes;
- `translation.json`: the target text per segment, each keyed by the segment index and
  a hash of its source text (and the language pair), so an edited source line
  invalidates only its own translation; saved once translation completes;
- `segment-NNNN.npz`: one voiced line, the synthesized speech at the voice's own sample
  rate (float32, lossless) with the key it was made for, a hash of (target text, voice,
  target language); saved as soon as the line is voiced. Fitting the line into its slot
  (`fit_to_slot`) is deterministic and cheap next to synthesis, so it is redone from
  the speech on every run and follows edited timings; no fit is stored.

Checkpoints are an optimisation: a failure to load, parse or save one is logged and the
work is simply done (again); it never fails a job.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import Checkpoints, JobContext
from .transcribe import Segment, Transcript, Word

log = logging.getLogger(__name__)

FORMAT = 1
TRANSCRIPT = "transcript.json"
TRANSLATION = "translation.json"


def segment_name(index: int) -> str:
    return f"segment-{index:04d}.npz"


def source_hash(text: str, source: str, target: str) -> str:
    """What a translation depends on: the source line and the language pair."""
    return _hash(["translation", source, target, text])


def speech_key(text: str, voice: str, language: str) -> str:
    """What a voiced line depends on: the target text, the voice and the target language."""
    return _hash(["speech", text, voice, language])


def _hash(parts: list[str]) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CachedTranscript:
    transcript: Transcript
    asr_model: str | None
    requested_language: str | None = None
    """The source language the job asked for when it was made (None: detected)."""


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray
    sample_rate: int


class StageCheckpoints:
    """One job's stage checkpoints, with every I/O failure turned into a miss.

    Thread-safe: voice workers load and save their lines concurrently. `work` counts
    what the job computed and what it reused (keys below), for logs and tests.
    """

    def __init__(self, store: Checkpoints | None, job_id: str, *, strict: bool = False) -> None:
        self.job_id = job_id
        self._store = store
        self._strict = strict
        """Raise when a save fails (a reviewer's edit must not vanish)."""
        self._lock = threading.Lock()
        self.work: Counter[str] = Counter()
        """transcribed (0/1), transcript_reused (0/1), translated, translation_reused,
        voiced, speech_reused: segments (or transcripts) computed vs loaded."""

    @classmethod
    def of(cls, context: JobContext, job_id: str) -> StageCheckpoints:
        """The checkpoints of a running job (none, with a warning, if its context has none)."""
        try:
            store: Checkpoints | None = context.checkpoints()
        except Exception:
            log.warning("job %s: no checkpoints; stages will not be resumable", job_id,
                        exc_info=True)
            store = None
        return cls(store, job_id)

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.work[what] += n

    # --- Raw I/O that never raises -----------------------------------------------------

    def _load(self, name: str) -> bytes | None:
        if self._store is None:
            return None
        try:
            return self._store.load(name)
        except Exception:
            log.warning("job %s: could not load checkpoint %s; recomputing", self.job_id,
                        name, exc_info=True)
            return None

    def _save(self, name: str, data: bytes) -> None:
        if self._store is None:
            return
        try:
            self._store.save(name, data)
        except Exception:
            if self._strict:
                raise
            log.warning("job %s: could not save checkpoint %s", self.job_id, name,
                        exc_info=True)

    def _load_json(self, name: str) -> dict[str, Any] | None:
        data = self._load(name)
        if data is None:
            return None
        try:
            document = json.loads(data)
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise ValueError(f"unknown checkpoint format {document.get('format')!r}")
            return document
        except Exception:
            log.warning("job %s: ignoring unreadable checkpoint %s", self.job_id, name,
                        exc_info=True)
            return None

    def _save_json(self, name: str, document: dict[str, Any]) -> None:
        self._save(name, json.dumps({"format": FORMAT, **document}, ensure_ascii=False,
                                    indent=1).encode())

    # --- Transcript ----------------------------------------------------------------------

    def load_transcript(self, requested_language: str | None, *,
                        any_language: bool = False) -> CachedTranscript | None:
        """The saved transcript, if it was made for the same requested source language
        (or detected the language now asked for: a resumed job knows its language);
        `any_language` skips that check (a reviewer reads whatever was made)."""
        document = self._load_json(TRANSCRIPT)
        if document is None:
            return None
        try:
            made_for = document["requested_language"]
            if not any_language and made_for != requested_language and not (
                    made_for is None and requested_language == document["language"]):
                log.info("job %s: transcript checkpoint is for another source language",
                         self.job_id)
                return None
            segments = [
                Segment(start=float(s["start"]), end=float(s["end"]), text=str(s["text"]),
                        words=[Word(float(w[0]), float(w[1]), str(w[2]), float(w[3]))
                               for w in s["words"]])
                for s in document["segments"]
            ]
            if not segments:
                raise ValueError("no segments")
            transcript = Transcript(str(document["language"]),
                                    float(document["language_probability"]),
                                    float(document["duration"]), segments)
            asr = document.get("asr_model")
            return CachedTranscript(transcript, str(asr) if asr is not None else None,
                                    str(made_for) if made_for else None)
        except Exception:
            log.warning("job %s: ignoring malformed transcript checkpoint", self.job_id,
                        exc_info=True)
            return None

    def save_transcript(self, transcript: Transcript, requested_language: str | None,
                        asr_model: str) -> None:
        self._save_json(TRANSCRIPT, {
            "requested_language": requested_language,
            "asr_model": asr_model,
            "language": transcript.language,
            "language_probability": transcript.language_probability,
            "duration": transcript.duration,
            "segments": [
                {"start": s.start, "end": s.end, "text": s.text,
                 "words": [[w.start, w.end, w.text, w.probability] for w in s.words]}
                for s in transcript.segments
            ],
        })

    # --- Translation ---------------------------------------------------------------------

    def load_translations(self, source: str, target: str) -> Translations:
        document = self._load_json(TRANSLATION)
        entries: dict[int, tuple[str, str]] = {}
        model = None
        if document is not None:
            try:
                model = document.get("model")
                for entry in document["segments"]:
                    entries[int(entry["index"])] = (str(entry["source_hash"]),
                                                    str(entry["text"]))
            except Exception:
                log.warning("job %s: ignoring malformed translation checkpoint", self.job_id,
                            exc_info=True)
                entries, model = {}, None
        return Translations(entries, source, target, str(model) if model else None)

    def save_translations(self, segments: Sequence[Segment], source: str, target: str,
                          model: str | None) -> None:
        self.save_target_texts(segments, {i: s.translation for i, s in enumerate(segments)},
                               source, target, model)

    def save_target_texts(self, segments: Sequence[Segment], texts: dict[int, str | None],
                          source: str, target: str, model: str | None) -> None:
        """Save the target text of the segments in `texts` (None: none, to be translated),
        each keyed by its current source line."""
        self._save_json(TRANSLATION, {
            "source": source,
            "target": target,
            "model": model,
            "segments": [{"index": i, "source_hash": source_hash(segments[i].text, source, target),
                          "text": text} for i, text in texts.items() if text is not None],
        })

    # --- Voiced lines --------------------------------------------------------------------

    def load_speech(self, index: int, key: str) -> Speech | None:
        data = self._load(segment_name(index))
        if data is None:
            return None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                if str(stored["key"]) != key:
                    return None  # the line's text, voice or language changed
                samples = np.asarray(stored["speech"], dtype=np.float32).reshape(-1)
                return Speech(samples, int(stored["sample_rate"]))
        except Exception:
            log.warning("job %s: ignoring unreadable checkpoint %s", self.job_id,
                        segment_name(index), exc_info=True)
            return None

    def save_speech(self, index: int, key: str, speech: Speech) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, key=np.array(key), speech=speech.samples.astype(np.float32),
                 sample_rate=np.array(speech.sample_rate, dtype=np.int64))
        self._save(segment_name(index), buffer.getvalue())


class Translations:
    """The saved target texts of one language pair, looked up per segment."""

    def __init__(self, entries: dict[int, tuple[str, str]], source: str, target: str,
                 model: str | None) -> None:
        self._entries = entries
        self.source = source
        self.target = target
        self.model = model

    def get(self, index: int, segment: Segment) -> str | None:
        """The saved target text of segment `index`, unless its source text changed."""
        entry = self._entries.get(index)
        if entry is None or entry[0] != source_hash(segment.text, self.source, self.target):
            return None
        return entry[1]

    def covers(self, segments: Sequence[Segment]) -> bool:
        return all(self.get(i, s) is not None for i, s in enumerate(segments))
