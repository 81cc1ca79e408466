"""Writing the dubbed audio and video with PyAV: wav, AAC in m4a, and a remuxed video.

The video stream is copied packet by packet (never re-encoded): only the audio is new.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from .media import MediaInfo

VIDEO_MEDIA_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime",
                     ".mkv": "video/x-matroska"}
_MP4_FRIENDLY = {"h264", "hevc", "mpeg4", "av1", "vp9", "mjpeg"}


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM wav, mono."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate, layout="mono")
        for chunk in _chunks(pcm, sample_rate):
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = sample_rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_m4a(path: Path, samples: np.ndarray, sample_rate: int, bitrate: int) -> None:
    """AAC-LC in an MPEG-4 audio file."""
    with av.open(str(path), mode="w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        stream.bit_rate = bitrate
        for packet in _encode_aac(stream, samples, sample_rate):
            container.mux(packet)


def video_suffix(info: MediaInfo, filename: str) -> str:
    """Keep MP4/MOV when the copied video codec is allowed there, else use Matroska."""
    suffix = Path(filename).suffix.lower()
    if info.container.startswith("mov") and info.video_codec in _MP4_FRIENDLY:
        return ".mov" if suffix == ".mov" else ".mp4"
    return ".mkv"


def mux_video(source: Path, samples: np.ndarray, sample_rate: int, path: Path,
              bitrate: int) -> None:
    """`source`'s video stream, copied, with `samples` as its only audio track (AAC)."""
    with av.open(str(source), mode="r") as src, av.open(str(path), mode="w") as out:
        video_in = next(s for s in src.streams.video
                        if not s.disposition & av.stream.Disposition.attached_pic)
        video_out = out.add_stream_from_template(video_in)
        audio_out = out.add_stream("aac", rate=sample_rate, layout="mono")
        audio_out.bit_rate = bitrate
        # Encode the audio first (it is small) so both streams can be interleaved by time.
        audio_packets = list(_encode_aac(audio_out, samples, sample_rate))
        pending = iter(audio_packets)
        next_audio = next(pending, None)
        for packet in src.demux(video_in):
            if packet.size == 0:  # the demuxer's end-of-stream flush packet
                continue
            at = _seconds(packet)
            while next_audio is not None and _seconds(next_audio) <= at:
                out.mux(next_audio)
                next_audio = next(pending, None)
            packet.stream = video_out
            out.mux(packet)
        while next_audio is not None:
            out.mux(next_audio)
            next_audio = next(pending, None)


def _encode_aac(stream: av.AudioStream, samples: np.ndarray,
                sample_rate: int) -> Iterator[av.Packet]:
    planar = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
    pts = 0
    for chunk in _chunks(planar, sample_rate):
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = pts
        pts += chunk.shape[1]
        yield from stream.encode(frame)
    yield from stream.encode(None)


def _chunks(planar: np.ndarray, sample_rate: int) -> Iterator[np.ndarray]:
    step = sample_rate  # one second per frame keeps memory flat on long inputs
    for start in range(0, planar.shape[1], step):
        yield np.ascontiguousarray(planar[:, start:start + step])


def _seconds(packet: av.Packet) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base) if stamp is not None and packet.time_base else 0.0
