"""The product's real engine behind the real gRPC service: speech in, a dub out."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from octavia.v1 import jobs_pb2 as pb

from server.app import OctaviaServer
from server.settings import Settings
from tests.support.jobs import submit, watch_all

RUNNING = [pb.JOB_PHASE_TRANSCRIBING, pb.JOB_PHASE_TRANSLATING, pb.JOB_PHASE_SYNTHESIZING,
           pb.JOB_PHASE_UPLOADING]


@pytest.fixture
def settings_overrides(pipeline_settings: Settings) -> dict[str, object]:
    """Every model setting of the session's tiny offline models, and the real engine."""
    models = pipeline_settings.model_dump(
        include={"offline", "device", "asr_model", "translation_model",
                 "translation_fallback_model", "tts_voices", "tts_fallback_voice",
                 "max_media_seconds"})
    return {**models, "engine": "server.pipeline:DubbingEngine", "progress_interval_seconds": 0.05}


@pytest.fixture
def engine(settings: Settings) -> Iterator[Any]:
    """The production engine, built the way `octavia serve` builds it."""
    from server.engine.loading import load_engine

    engine = load_engine(settings)
    yield engine


async def dub(stub: Any, auth: Any, media: Path) -> list[pb.WatchJobResponse]:
    content = await asyncio.to_thread(media.read_bytes)
    job = await submit(stub, content, auth, filename=media.name, target_language="es",
                       source_language="en")
    # Replay from the submit: the job may already be transcribing when the watch starts.
    return await watch_all(stub, job.job_id, auth, after=job.sequence)


def check_story(messages: list[pb.WatchJobResponse]) -> pb.Job:
    final = messages[-1].job
    assert final.status == pb.JOB_STATUS_COMPLETED, final.error_message
    entered = [m.job.phase for m in messages if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED]
    assert entered == RUNNING
    progress = [m.job.progress_percentage for m in messages]
    assert progress == sorted(progress) and progress[-1] == 100
    assert any("Transcribing" in m.job.current_step for m in messages)
    return final


async def fetch(stub: Any, auth: Any, job: pb.Job, name: str) -> bytes:
    chunks = [m async for m in stub.ReadArtifact(
        pb.ReadArtifactRequest(job_id=job.job_id, name=name), metadata=auth)]
    data = b"".join(c.data for c in chunks)
    listed = next(a for a in job.artifacts if a.name == name)
    assert len(data) == listed.size_bytes
    assert hashlib.sha256(data).hexdigest() == listed.sha256
    return data


@pytest.mark.ml
async def test_an_english_clip_is_dubbed_to_spanish_through_grpc(
    stub: Any, auth: Any, speech_en: Path, tmp_path: Path, server: OctaviaServer
) -> None:
    final = check_story(await dub(stub, auth, speech_en))

    names = {a.name for a in final.artifacts}
    assert final.output_file in names
    assert {"transcript.json"} <= names
    assert any(n.endswith(".srt") for n in names) and any(n.endswith(".vtt") for n in names)
    transcript = json.loads(await fetch(stub, auth, final, "transcript.json"))
    assert transcript["segments"]
    audio = tmp_path / final.output_file
    audio.write_bytes(await fetch(stub, auth, final, final.output_file))
    with av.open(str(audio)) as container:
        stream = container.streams.audio[0]
        duration = float(container.duration or 0) / av.time_base
        assert stream.codec_context.sample_rate > 0
    assert duration == pytest.approx(final.media_duration_seconds, abs=0.5)


@pytest.mark.ml
async def test_a_video_comes_back_with_its_picture_and_the_dubbed_sound(
    stub: Any, auth: Any, video_en: Path, tmp_path: Path
) -> None:
    final = check_story(await dub(stub, auth, video_en))

    video = tmp_path / final.output_file
    video.write_bytes(await fetch(stub, auth, final, final.output_file))
    with av.open(str(video)) as container:
        assert len(container.streams.video) == 1
        assert len(container.streams.audio) == 1
