"""The disk fills up: the job that hit it fails with a reason a program can act on, uploads
are refused as retryable, and everything else goes on."""

from __future__ import annotations

import errno
import os

import grpc
import pytest
from octavia.v1 import jobs_pb2 as pb

from server import submission
from server.app import OctaviaServer
from tests.support.jobs import submit, watch_all


def disk_full(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


async def test_a_job_that_cannot_store_its_results_fails_as_retryable_and_the_next_one_runs(
    stub, auth, wav, server: OctaviaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(server.artifacts.fs, "open", disk_full)
        job = await submit(stub, wav, auth)
        failed = (await watch_all(stub, job.job_id, auth, after=job.sequence))[-1].job

    assert failed.status == pb.JOB_STATUS_FAILED
    assert failed.error.reason == "STORAGE_FULL" and failed.error.retryable
    assert "disk space" in failed.error_message
    again = await submit(stub, wav, auth)
    assert (await watch_all(stub, again.job_id, auth, after=again.sequence))[-1].job.status == (
        pb.JOB_STATUS_COMPLETED)


async def test_an_upload_that_does_not_fit_on_disk_is_refused_as_retryable(
    stub, auth, wav, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submission, "store_source", disk_full)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await submit(stub, wav, auth)

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "disk is full" in (refused.value.details() or "")
    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=auth)
    assert list(listed.jobs) == [], "nothing half-stored"
