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
from tests.support.jobs import submit, watch_all, watch_until

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


def check_story(messages: list[pb.WatchJobResponse], *, transcribed: bool = True) -> pb.Job:
    final = messages[-1].job
    assert final.status == pb.JOB_STATUS_COMPLETED, final.error_message
    entered = [m.job.phase for m in messages if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED]
    assert entered == RUNNING
    progress = [m.job.progress_percentage for m in messages]
    assert progress == sorted(progress) and progress[-1] == 100
    if transcribed:  # not a re-dub, which reuses the transcript
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


@pytest.mark.ml
async def test_two_edited_lines_are_the_only_ones_spoken_again_and_the_rest_is_unchanged(
    stub: Any, auth: Any, speech_en: Path, engine: Any
) -> None:
    """Paused after translating, resumed (version 1), two target lines edited, re-dubbed
    (version 2): only those two are synthesized again, nothing is transcribed or translated
    again, the outputs carry the new text and the untouched lines sound exactly the same."""
    content = await asyncio.to_thread(speech_en.read_bytes)
    job = await submit(stub, content, auth, filename=speech_en.name, target_language="es",
                       source_language="en", options=pb.JobOptions(
                           pause_after=[pb.JOB_PHASE_TRANSLATING],
                           mix_mode=pb.MIX_MODE_DUB_ONLY))
    paused = (await watch_until(stub, job.job_id, auth, pb.JOB_STATUS_AWAITING_REVIEW,
                                after=job.sequence))[-1]
    listed = await stub.ListSegments(pb.ListSegmentsRequest(job_id=job.job_id), metadata=auth)
    assert listed.editable and listed.source_language == "en" and listed.target_language == "es"
    segments = listed.segments
    assert len(segments) >= 3, "the clip has three sentences"
    assert all(s.source_text and s.target_text for s in segments)
    await stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=auth)
    first = check_resumed(await watch_all(stub, job.job_id, auth, after=paused.sequence))
    assert engine.work["voiced"] == len(segments)
    before = dict(engine.work)
    v1_audio = decoded(await fetch(stub, auth, first, "dubbed.wav"))

    edited = {0: "Hola mundo, esta es la línea nueva.", 2: "Otra frase cambiada."}
    updated = await stub.UpdateSegments(pb.UpdateSegmentsRequest(job_id=job.job_id, edits=[
        pb.SegmentEdit(index=i, target_text=text) for i, text in edited.items()]), metadata=auth)
    assert [s.target_text for s in updated.segments] == [
        edited.get(s.index, s.target_text) for s in segments]
    redub = (await stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=auth)).job
    assert redub.version == 2
    second = check_story(await watch_all(stub, job.job_id, auth, after=redub.sequence - 1),
                         transcribed=False)

    work = {key: engine.work.get(key, 0) - before.get(key, 0) for key in engine.work}
    assert work.get("voiced") == 2, work
    assert work.get("transcribed", 0) == 0 and work.get("translated", 0) == 0, work
    assert work.get("speech_reused") == len(segments) - 2, work
    transcript = json.loads(await fetch(stub, auth, second, "transcript.json"))
    assert [s["translation"] for s in transcript["segments"]] == [
        edited.get(s.index, s.target_text) for s in segments]
    subtitles = (await fetch(stub, auth, second, "subtitles.es.srt")).decode()
    assert all(text in subtitles for text in edited.values())
    v2_audio = decoded(await fetch(stub, auth, second, "dubbed.wav"))
    assert v2_audio.shape == v1_audio.shape
    rate = v1_audio.size / first.media_duration_seconds  # samples per second, mono
    for index, segment in enumerate(segments):
        start = int(segment.start_seconds * rate)
        end = (int(segments[index + 1].start_seconds * rate) if index + 1 < len(segments)
               else v1_audio.size)
        same = bool((v1_audio[start:end] == v2_audio[start:end]).all())
        assert same == (index not in edited), f"segment {index}"
    versions = await stub.ListVersions(pb.ListVersionsRequest(job_id=job.job_id), metadata=auth)
    assert [v.version for v in versions.versions] == [1, 2]



@pytest.mark.ml
async def test_an_edited_source_line_is_translated_and_spoken_again_alone(
    stub: Any, auth: Any, speech_en: Path, engine: Any
) -> None:
    first = check_story(await dub(stub, auth, speech_en))
    segments = (await stub.ListSegments(pb.ListSegmentsRequest(job_id=first.job_id),
                                        metadata=auth)).segments
    before = dict(engine.work)

    updated = await stub.UpdateSegments(pb.UpdateSegmentsRequest(job_id=first.job_id, edits=[
        pb.SegmentEdit(index=1, source_text="A completely different sentence.",
                       end_seconds=segments[1].end_seconds - 0.1)]), metadata=auth)
    assert updated.segments[1].source_text == "A completely different sentence."
    assert updated.segments[1].target_text == "", "its old translation no longer applies"
    redub = (await stub.ResumeJob(pb.ResumeJobRequest(job_id=first.job_id), metadata=auth)).job
    second = check_story(await watch_all(stub, first.job_id, auth, after=redub.sequence - 1),
                         transcribed=False)

    work = {key: engine.work.get(key, 0) - before.get(key, 0) for key in engine.work}
    assert (work.get("translated"), work.get("voiced"), work.get("transcribed", 0)) == (1, 1, 0)
    transcript = json.loads(await fetch(stub, auth, second, "transcript.json"))
    assert transcript["segments"][1]["text"] == "A completely different sentence."
    assert transcript["segments"][1]["end"] == pytest.approx(segments[1].end_seconds - 0.1,
                                                              abs=1e-3)


def check_resumed(messages: list[pb.WatchJobResponse]) -> pb.Job:
    final = messages[-1].job
    assert final.status == pb.JOB_STATUS_COMPLETED, final.error_message
    assert messages[0].event_type == pb.EVENT_TYPE_RESUMED
    entered = [m.job.phase for m in messages if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED]
    assert entered == RUNNING[2:]
    return final


def decoded(wav: bytes) -> Any:
    """The samples of a wav file, as one flat array."""
    import io

    import numpy as np

    with av.open(io.BytesIO(wav)) as container:
        return np.concatenate([frame.to_ndarray().reshape(-1)
                               for frame in container.decode(audio=0)])
