"""Synthetic test media written with PyAV: any supported container, with or without video."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# container suffix -> (format, audio codec, audio sample format, video codec or None)
FORMATS: dict[str, tuple[str, str, str, str | None]] = {
    ".wav": ("wav", "pcm_s16le", "s16", None),
    ".mp3": ("mp3", "libmp3lame", "fltp", None),
    ".m4a": ("ipod", "aac", "fltp", None),
    ".flac": ("flac", "flac", "s16", None),
    ".ogg": ("ogg", "libvorbis", "fltp", None),
    ".mp4": ("mp4", "aac", "fltp", "libx264"),
    ".mov": ("mov", "aac", "fltp", "libx264"),
    ".mkv": ("matroska", "libopus", "fltp", "libx264"),
    ".webm": ("webm", "libopus", "fltp", "libvpx"),
}


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """Any audio file as mono float32 at `sample_rate`."""
    chunks = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks)


def write_media(path: Path, samples: np.ndarray, sample_rate: int, *,
                video: bool | None = None, fps: int = 10, size: tuple[int, int] = (64, 48)
                ) -> Path:
    """Encode mono `samples` into `path` (format from its suffix); videos get moving stripes."""
    fmt, audio_codec, sample_format, video_codec = FORMATS[path.suffix.lower()]
    if video is False:
        video_codec = None
    rate = 48_000 if audio_codec == "libopus" else sample_rate
    if rate != sample_rate:
        samples = _resample(samples, sample_rate, rate)
    with av.open(str(path), mode="w", format=fmt) as out:
        vstream = None
        if video_codec is not None:
            vstream = out.add_stream(video_codec, rate=fps)
            vstream.width, vstream.height = size
            vstream.pix_fmt = "yuv420p"
        astream = out.add_stream(audio_codec, rate=rate, layout="mono")
        packets = _encode_audio(astream, samples, rate, sample_format)
        if vstream is not None:
            frames = int(np.ceil(samples.size / rate * fps))
            packets += _encode_video(vstream, frames, size, fps)
        packets.sort(key=lambda p: float(p.dts * p.time_base) if p.dts is not None else 0.0)
        for packet in packets:
            out.mux(packet)
    return path


def _encode_audio(stream: av.AudioStream, samples: np.ndarray, rate: int,
                  sample_format: str) -> list[av.Packet]:
    packets: list[av.Packet] = []
    data = samples.astype(np.float32)
    if sample_format == "s16":
        data = (np.clip(data, -1, 1) * 32767).astype(np.int16)
    step = 4096
    for start in range(0, data.size, step):
        chunk = np.ascontiguousarray(data[start:start + step].reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(chunk, format=sample_format, layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        packets += stream.encode(frame)
    packets += stream.encode(None)
    return packets


def _encode_video(stream: av.VideoStream, frames: int, size: tuple[int, int],
                  fps: int) -> list[av.Packet]:
    packets: list[av.Packet] = []
    width, height = size
    for index in range(frames):
        picture = np.zeros((height, width, 3), np.uint8)
        picture[:, :, 0] = (np.arange(width) * 4 + index * 8) % 256
        picture[:, :, 1] = (np.arange(height)[:, None] * 5) % 256
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = index
        frame.time_base = Fraction(1, fps)
        packets += stream.encode(frame)
    packets += stream.encode(None)
    return packets


def _resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt",
        layout="mono")
    frame.sample_rate = from_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=to_rate)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out)
