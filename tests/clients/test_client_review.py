"""Review through the SDK: pause, wait, read and edit segments, resume, versions, webhooks.

The scripted engine writes no transcript; `tests.support.segments` saves one through the
pipeline's checkpoint code once a job has paused, as the real engine would have.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

import pytest
from octavia import (
    AsyncOctaviaClient,
    ChecksumMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OctaviaClient,
    Reason,
    SegmentEdit,
    pb,
)

from tests.clients.conftest import FAST_RETRY, WEBHOOK_SECRET
from tests.support.segments import write_segments
from tests.support.waiting import eventually


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # The receiver listens on loopback.
    return {"webhook_secret": WEBHOOK_SECRET, "webhook_allow_private_networks": True}


async def test_wait_returns_at_review_and_resume_dubs_the_edited_lines(
    server, client, wav
) -> None:
    job = await client.submit(wav, "es", pause_after=["translating"])
    assert list(job.options.pause_after) == [pb.JOB_PHASE_TRANSLATING]

    paused = await client.wait(job.job_id)
    assert paused.status == pb.JOB_STATUS_AWAITING_REVIEW
    assert paused.phase == pb.JOB_PHASE_TRANSLATING

    write_segments(server, job.job_id)
    listed = await client.list_segments(job.job_id)
    assert listed.editable
    assert (listed.source_language, listed.target_language) == ("en", "es")
    assert [(s.index, s.source_text, s.target_text) for s in listed.segments] == [
        (0, "Hello there.", "Hola."), (1, "See you [soon].", "Hasta [pronto].")]
    assert listed.segments[1].start_seconds == pytest.approx(0.5)

    edited = await client.update_segments(job.job_id, [
        SegmentEdit(1, target_text="Hasta luego.", end=0.95),
        pb.SegmentEdit(index=0, source_text="Hi there."),  # the message itself works too
    ])
    assert [s.target_text for s in edited] == ["", "Hasta luego."], (
        "a new source line has no translation until it is translated again")
    assert edited[0].source_text == "Hi there."
    assert edited[1].end_seconds == pytest.approx(0.95)
    assert (await client.list_segments(job.job_id)).segments == edited

    resumed = await client.resume(job.job_id)
    assert resumed.status in (pb.JOB_STATUS_PENDING, pb.JOB_STATUS_PROCESSING)
    done = await client.wait(job.job_id)
    assert done.status == pb.JOB_STATUS_COMPLETED
    assert [v.version for v in await client.list_versions(job.job_id)] == [1]


async def test_wait_returns_a_job_that_ends_without_pausing(client, wav) -> None:
    job = await client.submit(wav, "es")
    assert (await client.wait(job.job_id)).status == pb.JOB_STATUS_COMPLETED


async def test_watch_goes_past_a_replayed_pause_the_job_has_left(client, wav) -> None:
    job = await client.submit(wav, "es", pause_after=["transcribing", "translating"])
    first = await client.wait(job.job_id)
    assert first.phase == pb.JOB_PHASE_TRANSCRIBING
    await client.resume(job.job_id)
    second = await client.wait(job.job_id)
    assert (second.status, second.phase) == (
        pb.JOB_STATUS_AWAITING_REVIEW, pb.JOB_PHASE_TRANSLATING)

    replay = [u async for u in client.watch(job.job_id, after_sequence=1, stop_at_review=True)]

    pauses = [u.job.phase for u in replay if u.event_type == pb.EVENT_TYPE_AWAITING_REVIEW]
    assert pauses == [pb.JOB_PHASE_TRANSCRIBING, pb.JOB_PHASE_TRANSLATING]
    assert replay[-1].job.status == pb.JOB_STATUS_AWAITING_REVIEW
    assert replay[-1].job.phase == pb.JOB_PHASE_TRANSLATING


async def test_segments_before_a_transcript_and_bad_edits_are_typed_errors(
    server, client, engine, wav
) -> None:
    job = await client.submit(wav, "es", pause_after=["transcribing"])
    await client.wait(job.job_id)
    with pytest.raises(FailedPrecondition) as missing:
        await client.list_segments(job.job_id)
    assert missing.value.reason == Reason.NO_SEGMENTS

    write_segments(server, job.job_id, translated=False)
    listed = await client.list_segments(job.job_id)
    assert [s.target_text for s in listed.segments] == ["", ""]
    with pytest.raises(InvalidArgument) as bad:
        await client.update_segments(job.job_id, SegmentEdit(5, target_text="x"))
    assert "no segment 5" in bad.value.message
    with pytest.raises(InvalidArgument):
        await client.update_segments(job.job_id, SegmentEdit(0, start=0.6))  # after its end

    engine.hold = threading.Event()  # the resumed job waits before its next phase
    await client.resume(job.job_id)
    with pytest.raises(FailedPrecondition) as refused:
        await client.resume(job.job_id)
    assert refused.value.reason == Reason.JOB_NOT_REVIEWABLE
    with pytest.raises(FailedPrecondition) as busy:
        await client.update_segments(job.job_id, SegmentEdit(0, target_text="x"))
    assert busy.value.reason == Reason.JOB_NOT_REVIEWABLE
    engine.hold.set()
    assert (await client.wait(job.job_id)).status == pb.JOB_STATUS_COMPLETED


async def test_submit_checks_phase_names_before_sending(client, wav) -> None:
    with pytest.raises(InvalidArgument, match="unknown phase 'dubbing'"):
        await client.submit(wav, "es", pause_after=["dubbing"])
    with pytest.raises(InvalidArgument) as refused:
        await client.submit(wav, "es", pause_after=[pb.JOB_PHASE_SYNTHESIZING])
    assert "pause_after" in refused.value.message
    with pytest.raises(InvalidArgument) as bad_url:
        await client.submit(wav, "es", webhook_url="ftp://example.com/hook")
    assert "webhook_url" in bad_url.value.message


async def test_a_redub_is_a_new_version_and_each_version_downloads_verified(
    server, client, engine, wav, tmp_path
) -> None:
    job = await client.submit(wav, "es")
    await client.wait(job.job_id)
    engine.hold = threading.Event()  # keep the re-dub from starting its first phase
    redub = await client.resume(job.job_id)
    assert redub.version == 2
    with pytest.raises(FailedPrecondition) as unfinished:
        await client.download(job.job_id, "dubbed.wav", tmp_path / "early.wav")
    assert unfinished.value.reason == Reason.JOB_NOT_FINISHED
    first = await client.download(job.job_id, "dubbed.wav", tmp_path / "v1.wav", version=1)
    assert first.read_bytes() == wav, "the old version stays downloadable during a re-dub"

    engine.hold.set()
    assert (await client.wait(job.job_id)).version == 2
    versions = await client.list_versions(job.job_id)
    assert [v.version for v in versions] == [1, 2]
    paths = await client.download_all(job.job_id, tmp_path / "v2", version=2)
    listed = {a.name: a.sha256 for a in versions[1].artifacts}
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths} == listed
    current = await client.download_all(job.job_id, tmp_path / "current")
    assert sorted(p.name for p in current) == sorted(listed)

    with pytest.raises(NotFound) as missing:
        await client.download(job.job_id, "dubbed.wav", tmp_path, version=7)
    assert missing.value.reason == Reason.ARTIFACT_NOT_FOUND
    assert "no version 7" in missing.value.message

    stored = Path(server.settings.artifacts_url_resolved) / job.job_id / "dubbed.wav"
    corrupt = bytearray(stored.read_bytes())
    corrupt[-1] ^= 0xFF
    stored.write_bytes(bytes(corrupt))
    with pytest.raises(ChecksumMismatch):
        await client.download(job.job_id, "dubbed.wav", tmp_path / "bad.wav", version=1)
    assert not (tmp_path / "bad.wav").exists()
    assert not (tmp_path / "bad.wav.part").exists()


async def test_the_blocking_client_reviews_too(server, token, wav, tmp_path) -> None:
    def review() -> tuple[pb.Job, pb.Job, list[pb.JobVersion], bytes]:
        with OctaviaClient(server.address, token=token, retry=FAST_RETRY) as client:
            job = client.submit(wav, "es", pause_after=[pb.JOB_PHASE_TRANSLATING])
            paused = client.wait(job.job_id)
            write_segments(server, job.job_id)
            client.update_segments(job.job_id, SegmentEdit(0, target_text="¡Hola!"))
            segments = client.list_segments(job.job_id).segments
            assert segments[0].target_text == "¡Hola!"
            client.resume(job.job_id)
            done = client.wait(job.job_id)
            versions = client.list_versions(job.job_id)
            path = client.download(job.job_id, "dubbed.wav", tmp_path, version=1)
            return paused, done, versions, path.read_bytes()

    paused, done, versions, audio = await asyncio.to_thread(review)

    assert paused.status == pb.JOB_STATUS_AWAITING_REVIEW
    assert done.status == pb.JOB_STATUS_COMPLETED
    assert [v.version for v in versions] == [1]
    assert audio == wav


async def test_webhook_url_is_kept_and_its_deliveries_are_listed(
    receiver, client: AsyncOctaviaClient, wav
) -> None:
    job = await client.submit(wav, "es", webhook_url=receiver)
    assert job.options.webhook_url == receiver
    await client.wait(job.job_id)
    async def delivered() -> bool:
        deliveries = await client.list_webhook_deliveries(job.job_id)
        return any(d.event_type == pb.EVENT_TYPE_COMPLETED
                   and d.state == pb.WEBHOOK_DELIVERY_STATE_DELIVERED for d in deliveries)

    await eventually(delivered)
