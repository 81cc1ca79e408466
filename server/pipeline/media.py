"""Reading source media with PyAV: a cheap probe at submit time, and full decoding to PCM.

Only `av` and `numpy` are imported here so the API can probe uploads without the ML stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from octavia.errors import Reason

from ..engine import EngineError

ASR_SAMPLE_RATE = 16_000
SILENCE_PEAK = 1e-3
"""Below this peak amplitude (about -60 dBFS) the input counts as silent."""


@dataclass(frozen=True)
class MediaInfo:
    """What a probe learnt about a media file without decoding all of it."""

    duration_seconds: float
    has_audio: bool
    has_video: bool
    container: str
    audio_codec: str | None = None
    video_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None


def probe(path: Path | str, *, max_seconds: float | None = None) -> MediaInfo:
    """Open `path`, read its streams and duration, and decode one audio frame.

    Raises EngineError (MEDIA_UNREADABLE, MEDIA_TOO_LONG) for anything a dub can't start from.
    """
    try:
        with av.open(str(path), mode="r") as container:
            info = _describe(container)
            if not info.has_audio:
                raise EngineError(
                    "The media has no audio track to dub.", reason=Reason.MEDIA_UNREADABLE
                )
            _decode_first_audio_frame(container)
    except EngineError:
        raise
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise _unreadable(exc) from exc
    if info.duration_seconds <= 0:
        raise EngineError("The media has no measurable duration.", reason=Reason.MEDIA_UNREADABLE)
    if max_seconds is not None and info.duration_seconds > max_seconds:
        raise EngineError(
            f"The media is {format_clock(info.duration_seconds)} long; the longest accepted is "
            f"{format_clock(max_seconds)}.",
            reason=Reason.MEDIA_TOO_LONG,
        )
    return info


def decode_audio(path: Path | str, sample_rate: int = ASR_SAMPLE_RATE) -> np.ndarray:
    """The first audio stream of `path` as mono float32 PCM at `sample_rate`."""
    return decode_audio_at(path, (sample_rate,))[0]


def decode_audio_at(path: Path | str, rates: Sequence[int]) -> list[np.ndarray]:
    """The first audio stream at each of `rates`, from one decoding pass."""
    chunks: list[list[np.ndarray]] = [[] for _ in rates]
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise EngineError(
                    "The media has no audio track to dub.", reason=Reason.MEDIA_UNREADABLE
                )
            stream = container.streams.audio[0]
            resamplers = [av.AudioResampler(format="flt", layout="mono", rate=rate)
                          for rate in rates]
            for frame in container.decode(stream):
                for resampler, out in zip(resamplers, chunks, strict=True):
                    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            for resampler, out in zip(resamplers, chunks, strict=True):
                out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except EngineError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _unreadable(exc) from exc
    if not chunks[0]:
        raise EngineError("The audio track holds no samples.", reason=Reason.MEDIA_UNREADABLE)
    return [np.concatenate(out).astype(np.float32, copy=False) for out in chunks]


def ensure_audible(samples: np.ndarray) -> None:
    """Refuse input that has nothing to transcribe."""
    if samples.size == 0 or float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise EngineError(
            "The audio is silent: there is no speech to dub.", reason=Reason.MEDIA_SILENT
        )


def format_clock(seconds: float) -> str:
    """`3:07` or `1:02:03`, for step texts and messages."""
    total = max(int(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _describe(container: av.container.InputContainer) -> MediaInfo:
    audio = container.streams.audio[0] if container.streams.audio else None
    video = _real_video_stream(container)
    return MediaInfo(
        duration_seconds=_duration(container),
        has_audio=audio is not None,
        has_video=video is not None,
        container=container.format.name,
        audio_codec=audio.codec_context.name if audio is not None else None,
        video_codec=video.codec_context.name if video is not None else None,
        sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        channels=audio.codec_context.channels if audio is not None else None,
    )


def _real_video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    # Cover art in mp3/m4a files shows up as a one-frame "video" stream; it is not a video.
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _duration(container: av.container.InputContainer) -> float:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    longest = 0.0
    for stream in container.streams:
        if stream.duration is not None and stream.time_base is not None:
            longest = max(longest, float(stream.duration * stream.time_base))
    if longest > 0:
        return longest
    if not container.streams.audio:
        return 0.0  # nothing to walk; the caller refuses media without audio
    # Some raw streams carry no duration in their headers: walk the packets (no decoding).
    end = 0.0
    for packet in container.demux(container.streams.audio[0]):
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end


def _decode_first_audio_frame(container: av.container.InputContainer) -> None:
    stream = container.streams.audio[0]
    for _frame in container.decode(stream):
        return
    raise EngineError("The audio track holds no samples.", reason=Reason.MEDIA_UNREADABLE)


def _unreadable(exc: BaseException) -> EngineError:
    return EngineError(
        f"The media could not be read as audio or video ({type(exc).__name__}: {exc}). "
        "Supported: wav, mp3, m4a, flac, ogg, mp4, mkv, webm, mov.",
        reason=Reason.MEDIA_UNREADABLE,
    )
