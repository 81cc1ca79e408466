"""Review and re-dub through the API: pause after a phase, resume, re-dub as a new version.

The scripted engine keeps no segments; editing them is specified with the real pipeline
in tests/server/pipeline/test_review_pipeline.py.
"""

from __future__ import annotations

import grpc
import pytest
from octavia.v1 import jobs_pb2 as pb

from tests.support.jobs import submit, watch_all, watch_until

PAUSE_AFTER_TRANSLATING = pb.JobOptions(pause_after=[pb.JOB_PHASE_TRANSLATING])


async def read_all(stub, job_id: str, name: str, auth, version: int = 0) -> bytes:
    request = pb.ReadArtifactRequest(job_id=job_id, name=name, version=version)
    return b"".join([chunk.data async for chunk in stub.ReadArtifact(request, metadata=auth)])


async def test_a_job_paused_after_translating_awaits_review_and_goes_on_when_resumed(
    stub, auth, wav
) -> None:
    job = await submit(stub, wav, auth, options=PAUSE_AFTER_TRANSLATING)

    paused = (await watch_until(stub, job.job_id, auth, pb.JOB_STATUS_AWAITING_REVIEW))[-1]
    assert paused.job.phase == pb.JOB_PHASE_TRANSLATING
    assert paused.event_type == pb.EVENT_TYPE_AWAITING_REVIEW
    assert paused.job.current_step == "Awaiting review of the translation"
    assert list(paused.job.options.pause_after) == [], "no pause left ahead"

    resumed = (await stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=auth)).job
    assert resumed.status in (pb.JOB_STATUS_PENDING, pb.JOB_STATUS_PROCESSING)
    rest = await watch_all(stub, job.job_id, auth, after=paused.sequence)

    assert rest[0].event_type == pb.EVENT_TYPE_RESUMED
    phases = [m.job.phase for m in rest if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED]
    assert phases == [pb.JOB_PHASE_SYNTHESIZING, pb.JOB_PHASE_UPLOADING], (
        "the phases before the pause are not announced again")
    progress = [paused.job.progress_percentage] + [m.job.progress_percentage for m in rest]
    assert progress == sorted(progress)
    assert rest[-1].job.status == pb.JOB_STATUS_COMPLETED


async def test_a_paused_job_keeps_its_watchers_until_it_ends(stub, auth, wav) -> None:
    job = await submit(stub, wav, auth, options=PAUSE_AFTER_TRANSLATING)
    await watch_until(stub, job.job_id, auth, pb.JOB_STATUS_AWAITING_REVIEW)
    call = stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id), metadata=auth)
    snapshot = await call.read()
    assert snapshot.job.status == pb.JOB_STATUS_AWAITING_REVIEW

    await stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=auth)
    rest = []
    while (message := await call.read()) != grpc.aio.EOF:
        rest.append(message)

    assert rest[-1].event_type == pb.EVENT_TYPE_COMPLETED


async def test_pausing_after_both_phases_pauses_twice(stub, auth, wav) -> None:
    options = pb.JobOptions(pause_after=[pb.JOB_PHASE_TRANSLATING, pb.JOB_PHASE_TRANSCRIBING])
    job = await submit(stub, wav, auth, options=options)
    assert list(job.options.pause_after) == [pb.JOB_PHASE_TRANSCRIBING, pb.JOB_PHASE_TRANSLATING]

    first = (await watch_until(stub, job.job_id, auth, pb.JOB_STATUS_AWAITING_REVIEW))[-1]
    assert first.job.phase == pb.JOB_PHASE_TRANSCRIBING
    await stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=auth)
    second = (await watch_until(stub, job.job_id, auth, pb.JOB_STATUS_AWAITING_REVIEW,
                                  after=first.sequence))[-1]
    assert second.job.phase == pb.JOB_PHASE_TRANSLATING
    await stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=auth)
    done = await watch_all(stub, job.job_id, auth, after=second.sequence)
    assert done[-1].job.status == pb.JOB_STATUS_COMPLETED


async def test_resuming_a_job_that_is_not_awaiting_review_is_refused(
    stub, auth, wav, engine
) -> None:
    job = await submit(stub, wav, auth)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=auth)
    assert refused.value.code() in (grpc.StatusCode.FAILED_PRECONDITION,)
    assert "awaits review or has completed" in (refused.value.details() or "")


async def test_only_reviewable_phases_can_be_paused_after(stub, auth, wav) -> None:
    options = pb.JobOptions(pause_after=[pb.JOB_PHASE_SYNTHESIZING])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await submit(stub, wav, auth, options=options)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pause_after" in (refused.value.details() or "")


async def test_a_webhook_url_must_be_an_absolute_http_url(stub, auth, wav) -> None:
    for url in ("ftp://example.com/hook", "/relative", "http://", "http://[::1"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await submit(stub, wav, auth, options=pb.JobOptions(webhook_url=url))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, url


async def test_a_job_without_a_transcript_has_no_segments_yet(stub, auth, wav) -> None:
    job = await submit(stub, wav, auth)
    await watch_all(stub, job.job_id, auth)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListSegments(pb.ListSegmentsRequest(job_id=job.job_id), metadata=auth)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no segments" in (refused.value.details() or "")


async def test_another_users_job_cannot_be_reviewed_or_resumed(
    stub, auth, other_auth, wav
) -> None:
    job = await submit(stub, wav, auth, options=PAUSE_AFTER_TRANSLATING)
    await watch_until(stub, job.job_id, auth, pb.JOB_STATUS_AWAITING_REVIEW)

    calls = [
        stub.ListSegments(pb.ListSegmentsRequest(job_id=job.job_id), metadata=other_auth),
        stub.UpdateSegments(pb.UpdateSegmentsRequest(
            job_id=job.job_id, edits=[pb.SegmentEdit(index=0, target_text="x")]),
            metadata=other_auth),
        stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=other_auth),
        stub.ListVersions(pb.ListVersionsRequest(job_id=job.job_id), metadata=other_auth),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_completed_job_is_redubbed_as_a_new_version_and_the_old_one_is_kept(
    stub, auth, wav
) -> None:
    job = await submit(stub, wav, auth)
    first = (await watch_all(stub, job.job_id, auth))[-1]
    assert first.job.version == 1
    old_audio = await read_all(stub, job.job_id, "dubbed.wav", auth)

    redub = (await stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=auth)).job
    assert redub.version == 2
    assert redub.status in (pb.JOB_STATUS_PENDING, pb.JOB_STATUS_PROCESSING)
    assert not redub.artifacts
    messages = await watch_all(stub, job.job_id, auth, after=first.sequence)

    assert messages[0].event_type == pb.EVENT_TYPE_RESUMED
    assert [m.job.phase for m in messages if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED] == [
        pb.JOB_PHASE_TRANSCRIBING, pb.JOB_PHASE_TRANSLATING, pb.JOB_PHASE_SYNTHESIZING,
        pb.JOB_PHASE_UPLOADING]
    assert messages[-1].job.status == pb.JOB_STATUS_COMPLETED
    assert messages[-1].job.version == 2
    versions = (await stub.ListVersions(pb.ListVersionsRequest(job_id=job.job_id),
                                        metadata=auth)).versions
    assert [v.version for v in versions] == [1, 2]
    assert all(v.HasField("completed_at") and v.output_file == "dubbed.wav" for v in versions)
    for version in versions:
        for artifact in version.artifacts:
            data = await read_all(stub, job.job_id, artifact.name, auth, version.version)
            assert len(data) == artifact.size_bytes
            import hashlib

            assert hashlib.sha256(data).hexdigest() == artifact.sha256
    assert await read_all(stub, job.job_id, "dubbed.wav", auth, version=1) == old_audio


async def test_an_unknown_version_is_not_found(stub, auth, wav) -> None:
    job = await submit(stub, wav, auth)
    await watch_all(stub, job.job_id, auth)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await read_all(stub, job.job_id, "dubbed.wav", auth, version=7)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no version 7" in (refused.value.details() or "")



async def test_cancelling_a_job_that_awaits_review_ends_it_and_removes_its_checkpoints(
    stub, auth, wav, server
) -> None:
    job = await submit(stub, wav, auth, options=PAUSE_AFTER_TRANSLATING)
    await watch_until(stub, job.job_id, auth, pb.JOB_STATUS_AWAITING_REVIEW)
    checkpoints = server.artifacts.checkpoints(job.job_id)
    assert checkpoints.load("translating.done") is not None

    cancelled = (await stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id),
                                      metadata=auth)).job

    assert cancelled.status == pb.JOB_STATUS_CANCELLED
    assert checkpoints.load("translating.done") is None
