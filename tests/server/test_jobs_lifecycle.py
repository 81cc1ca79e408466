"""A job's life through the API: submit, status, watch to the end, list, artifacts."""

from __future__ import annotations

import uuid

from octavia.v1 import jobs_pb2 as pb

from server.app import OctaviaServer
from tests.support.jobs import submit, watch_all


async def test_submit_returns_a_pending_job_with_its_fields(stub, auth, wav, engine) -> None:
    job = await submit(stub, wav, auth, source_language="en", request_id="r-1")

    assert uuid.UUID(job.job_id)
    assert job.status in (pb.JOB_STATUS_PENDING, pb.JOB_STATUS_PROCESSING)
    assert job.target_language == "es"
    assert job.source_language == "en"
    assert job.request_id == "r-1"
    assert job.source_filename == "clip.wav"
    assert job.HasField("created_at")
    assert not job.HasField("completed_at")
    assert job.sequence == 1
    assert job.media_duration_seconds > 0.9


async def test_watch_sees_every_phase_in_order_and_ends_after_completion(
    stub, auth, wav
) -> None:
    job = await submit(stub, wav, auth)

    messages = await watch_all(stub, job.job_id, auth)

    sequences = [m.sequence for m in messages]
    assert sequences == sorted(set(sequences)), "sequences strictly increase"
    phases = [m.job.phase for m in messages if m.event_type == pb.EVENT_TYPE_PHASE_CHANGED]
    seen = [m.job.phase for m in messages]
    for phase in (pb.JOB_PHASE_TRANSCRIBING, pb.JOB_PHASE_TRANSLATING,
                  pb.JOB_PHASE_SYNTHESIZING, pb.JOB_PHASE_UPLOADING):
        assert phase in seen or phase in phases
    assert [p for p in seen if p != pb.JOB_PHASE_PENDING] == sorted(
        p for p in seen if p != pb.JOB_PHASE_PENDING
    ), "phases never go back"
    progress = [m.job.progress_percentage for m in messages]
    assert progress == sorted(progress), "progress never decreases"
    final = messages[-1]
    assert final.event_type == pb.EVENT_TYPE_COMPLETED
    assert final.job.status == pb.JOB_STATUS_COMPLETED
    assert final.job.progress_percentage == 100
    assert final.job.output_file == "dubbed.wav"
    assert final.job.HasField("started_at") and final.job.HasField("completed_at")
    assert {a.name for a in final.job.artifacts} == {"dubbed.wav", "target.srt"}


async def test_artifacts_carry_size_and_checksum_of_what_was_stored(
    stub, auth, wav, server: OctaviaServer
) -> None:
    import hashlib

    job = await submit(stub, wav, auth)
    final = (await watch_all(stub, job.job_id, auth))[-1].job

    audio = next(a for a in final.artifacts if a.name == "dubbed.wav")
    assert audio.media_type == "audio/wav"
    assert audio.size_bytes == len(wav)
    assert audio.sha256 == hashlib.sha256(wav).hexdigest()
    with server.artifacts.open(job.job_id, "dubbed.wav") as handle:
        assert handle.read() == wav


async def test_detected_language_is_recorded_when_source_language_is_empty(
    stub, auth, wav
) -> None:
    job = await submit(stub, wav, auth)
    final = (await watch_all(stub, job.job_id, auth))[-1].job
    assert final.source_language == "en"


async def test_get_status_matches_the_last_watched_snapshot(stub, auth, wav) -> None:
    job = await submit(stub, wav, auth)
    final = (await watch_all(stub, job.job_id, auth))[-1].job

    status = (await stub.GetStatus(pb.GetStatusRequest(job_id=job.job_id), metadata=auth)).job
    assert status == final


async def test_watching_a_finished_job_sends_its_snapshot_and_ends(stub, auth, wav) -> None:
    job = await submit(stub, wav, auth)
    await watch_all(stub, job.job_id, auth)

    again = await watch_all(stub, job.job_id, auth)

    assert len(again) == 1
    assert again[0].event_type == pb.EVENT_TYPE_UNSPECIFIED
    assert again[0].job.status == pb.JOB_STATUS_COMPLETED


async def test_same_request_id_returns_the_same_job(stub, auth, wav, engine) -> None:
    first = await submit(stub, wav, auth, request_id="once")
    second = await submit(stub, wav, auth, request_id="once")

    assert second.job_id == first.job_id
    await watch_all(stub, first.job_id, auth)
    assert engine.started.count(first.job_id) == 1


async def test_request_ids_are_scoped_to_their_owner(stub, auth, tokens, wav) -> None:
    bob = (("authorization", f"Bearer {tokens.mint('bob')}"),)
    mine = await submit(stub, wav, auth, request_id="shared")
    his = await submit(stub, wav, bob, request_id="shared")
    assert mine.job_id != his.job_id


async def test_list_jobs_pages_through_the_callers_jobs_newest_first(
    stub, auth, tokens, wav
) -> None:
    ids = [(await submit(stub, wav, auth)).job_id for _ in range(5)]
    bob = (("authorization", f"Bearer {tokens.mint('bob')}"),)
    await submit(stub, wav, bob)

    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListJobs(pb.ListJobsRequest(page_size=2, page_token=token),
                                   metadata=auth)
        assert len(page.jobs) <= 2
        seen.extend(j.job_id for j in page.jobs)
        token = page.next_page_token
        if not token:
            break

    assert seen == list(reversed(ids))
