"""The text results of a dub: subtitle files and the transcript document."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..engine import JobSpec
from .fit import DubbedLine
from .subtitles import Cue, to_srt, to_vtt
from .transcribe import Transcript

SUBTITLE_FORMATS = (("srt", to_srt, "application/x-subrip"), ("vtt", to_vtt, "text/vtt"))


def write_subtitles(out: Path, transcript: Transcript, source: str, target: str,
                    lines: Sequence[DubbedLine]) -> list[tuple[str, Path, str]]:
    """SRT and WebVTT for the source text (its timings) and the dub (where it is spoken).

    A same-language dub writes one pair, with the dub's timings.
    """
    segments = transcript.segments
    tracks = {
        source: [Cue(s.start, s.end, s.text) for s in segments],
        target: [Cue(line.start, line.speech_end, s.translation)
                 for s, line in zip(segments, lines, strict=True)],
    }
    files: list[tuple[str, Path, str]] = []
    for language, cues in tracks.items():
        for suffix, render, media_type in SUBTITLE_FORMATS:
            path = out / f"subtitles.{language}.{suffix}"
            path.write_text(render(cues), encoding="utf-8")
            files.append((path.name, path, media_type))
    return files


def transcript_document(job: JobSpec, transcript: Transcript, source: str,
                        lines: Sequence[DubbedLine], *, asr: str, translation: str | None,
                        tts: str, device: str) -> dict[str, object]:
    """Everything a client needs to inspect or re-time the dub, including how far off sync it is.

    Per segment, `dub.rate` is the speed-up applied and `dub.residual_seconds` how much
    later (+) or earlier (-) the dubbed speech ends than the source speech.
    """
    residuals = [abs(line.fit.residual_seconds) for line in lines]
    return {
        "job_id": job.job_id,
        "source_language": source,
        "source_language_detected": job.source_language is None,
        "language_probability": round(transcript.language_probability, 4),
        "target_language": job.target_language,
        "duration_seconds": round(transcript.duration, 3),
        "mix_mode": job.mix_mode,
        "models": {"asr": asr, "translation": translation, "tts": tts, "device": device},
        "sync": {
            "mean_abs_residual_seconds": round(float(np.mean(residuals)), 3),
            "max_abs_residual_seconds": round(float(np.max(residuals)), 3),
            "segments_trimmed": sum(1 for line in lines if line.fit.trimmed_seconds > 0),
        },
        "segments": [
            {
                "index": index,
                "start": round(segment.start, 3),
                "end": round(segment.end, 3),
                "text": segment.text,
                "translation": segment.translation,
                "words": [{"start": round(w.start, 3), "end": round(w.end, 3), "text": w.text,
                           "probability": round(w.probability, 3)} for w in segment.words],
                "dub": {
                    "start": round(line.start, 3),
                    "end": round(line.end, 3),
                    "speech_end": round(line.speech_end, 3),
                    "rate": round(line.fit.rate, 4),
                    "natural_seconds": round(line.fit.natural_seconds, 3),
                    "residual_seconds": round(line.fit.residual_seconds, 3),
                    "trimmed_seconds": round(line.fit.trimmed_seconds, 3),
                },
            }
            for index, (segment, line) in enumerate(zip(transcript.segments, lines,
                                                        strict=True))
        ],
    }
