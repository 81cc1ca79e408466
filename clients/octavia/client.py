"""The blocking client: one channel, typed errors, retries where they are safe."""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc

from ._core import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_TIMEOUT,
    UPLOAD_TIMEOUT,
    ArtifactSink,
    PhaseLike,
    RetryPolicy,
    SegmentEdit,
    Source,
    WatchCursor,
    auth_metadata,
    channel_options,
    download_path,
    find_artifact,
    is_retryable,
    read_source,
    submit_request,
    update_segments_request,
    version_listing,
)
from .errors import OctaviaError, Unavailable, from_rpc_error
from .v1 import jobs_pb2 as pb
from .v1 import jobs_pb2_grpc

T = TypeVar("T")


class OctaviaClient:
    """A connection to an Octavia server.

    Every call raises an `octavia.errors.OctaviaError` subclass on failure. Idempotent
    calls are retried with backoff on UNAVAILABLE; `submit` is one of them because it
    always sends a request id. `watch` resumes by itself after a dropped connection.
    """

    def __init__(
        self,
        target: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        options = channel_options(max_message_bytes)
        self._channel = (
            grpc.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.insecure_channel(target, options=options)
        )
        self._stub = jobs_pb2_grpc.JobServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = auth_metadata(token)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()

    def submit(
        self,
        source: Source,
        target_language: str,
        source_language: str | None = None,
        request_id: str | None = None,
        *,
        filename: str | None = None,
        mix_mode: pb.MixMode = pb.MIX_MODE_UNSPECIFIED,
        pause_after: Iterable[PhaseLike] = (),
        webhook_url: str | None = None,
        timeout: float | None = None,
    ) -> pb.Job:
        """Upload media and queue a job; `source` is a file path or the media's bytes.

        `pause_after` ("transcribing", "translating") stops the job in AWAITING_REVIEW
        after those phases, until `resume`; `webhook_url` is called when the job ends
        or pauses.
        """
        content, name = read_source(source)
        request = submit_request(
            content, filename or name, target_language, source_language, request_id, mix_mode,
            pause_after, webhook_url,
        )
        response: pb.SubmitJobResponse = self._call(
            self._stub.SubmitJob, request, timeout or max(self.timeout, UPLOAD_TIMEOUT)
        )
        return response.job

    def status(self, job_id: str, *, timeout: float | None = None) -> pb.Job:
        response: pb.GetStatusResponse = self._call(
            self._stub.GetStatus, pb.GetStatusRequest(job_id=job_id), timeout
        )
        return response.job

    def cancel(self, job_id: str, *, timeout: float | None = None) -> pb.Job:
        """Stop a job; cancelling a finished one returns it unchanged (so retrying is safe)."""
        response: pb.CancelJobResponse = self._call(
            self._stub.CancelJob, pb.CancelJobRequest(job_id=job_id), timeout
        )
        return response.job

    def list(
        self, *, limit: int | None = 20, timeout: float | None = None
    ) -> builtins.list[pb.Job]:
        """The caller's jobs, newest first: at most `limit` (None for all)."""
        jobs: list[pb.Job] = []
        token = ""
        while limit is None or len(jobs) < limit:
            size = 100 if limit is None else min(100, limit - len(jobs))
            page: pb.ListJobsResponse = self._call(
                self._stub.ListJobs, pb.ListJobsRequest(page_size=size, page_token=token), timeout
            )
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                break
        return jobs

    def list_segments(self, job_id: str, *, timeout: float | None = None
                      ) -> pb.ListSegmentsResponse:
        """The job's segments (timings, source and target text), its languages, and whether
        they may be edited now; FailedPrecondition (NO_SEGMENTS) before transcription."""
        response: pb.ListSegmentsResponse = self._call(
            self._stub.ListSegments, pb.ListSegmentsRequest(job_id=job_id), timeout
        )
        return response

    def update_segments(
        self, job_id: str, edits: SegmentEdit | Iterable[SegmentEdit | pb.SegmentEdit],
        *, timeout: float | None = None,
    ) -> builtins.list[pb.Segment]:
        """Apply `edits` (all or none) to a job that awaits review or has completed; returns
        every segment as edited. Nothing is dubbed again until `resume`."""
        response: pb.UpdateSegmentsResponse = self._call(
            self._stub.UpdateSegments, update_segments_request(job_id, edits), timeout
        )
        return builtins.list(response.segments)

    def resume(self, job_id: str, *, timeout: float | None = None) -> pb.Job:
        """Continue a job that awaits review, or re-dub a completed one as a new version.
        Not retried: a resume that reached the server and is sent again would re-dub twice."""
        response: pb.ResumeJobResponse = self._call(
            self._stub.ResumeJob, pb.ResumeJobRequest(job_id=job_id), timeout, retry=False
        )
        return response.job

    def list_versions(self, job_id: str, *, timeout: float | None = None
                      ) -> builtins.list[pb.JobVersion]:
        """Every finished version of the job's outputs, oldest first."""
        response: pb.ListVersionsResponse = self._call(
            self._stub.ListVersions, pb.ListVersionsRequest(job_id=job_id), timeout
        )
        return builtins.list(response.versions)

    def list_webhook_deliveries(self, job_id: str, *, timeout: float | None = None
                                ) -> builtins.list[pb.WebhookDelivery]:
        """The job's webhook deliveries and their attempts, oldest first."""
        response: pb.ListWebhookDeliveriesResponse = self._call(
            self._stub.ListWebhookDeliveries, pb.ListWebhookDeliveriesRequest(job_id=job_id),
            timeout,
        )
        return builtins.list(response.deliveries)

    def wait(self, job_id: str, *, stop_at_review: bool = True) -> pb.Job:
        """Block until the job ends or awaits review, and return it as it is then.

        With `stop_at_review=False` a paused job is waited through, until someone
        resumes it and it ends.
        """
        job = pb.Job()
        for update in self.watch(job_id, stop_at_review=stop_at_review):
            job = update.job
        return job

    def watch(
        self, job_id: str, *, after_sequence: int = 0, stop_at_review: bool = False
    ) -> Iterator[pb.WatchJobResponse]:
        """Every update of a job, once each and in order, until it ends.

        The first update is the current snapshot (or, with `after_sequence`, the stored
        events after it). A dropped connection is resumed from the last update delivered.
        A paused job keeps the watch open until it is resumed and ends; with
        `stop_at_review` the watch ends after the update that says it awaits review.
        """
        cursor = WatchCursor(after_sequence, stop_at_review)
        delays = self.retry.delays()
        while True:
            call = self._stub.WatchJob(cursor.request(job_id), metadata=self._metadata)
            try:
                for message in call:
                    if cursor.accept(message):
                        delays = self.retry.delays()  # a new outage gets a fresh budget
                        yield message
                        if cursor.paused and cursor.still_paused(self.status(job_id)):
                            return
                if cursor.done:
                    return
            except grpc.RpcError as error:
                if not is_retryable(error):
                    raise from_rpc_error(error) from error
                failure: OctaviaError = from_rpc_error(error)
            else:  # the stream ended before the job did (e.g. a server restart)
                failure = Unavailable(f"the watch of job {job_id} ended early")
            finally:
                call.cancel()
            delay = next(delays, None)
            if delay is None:
                raise failure
            time.sleep(delay)

    def download(
        self, job_id: str, name: str, dest: str | os.PathLike[str] = ".",
        *, version: int = 0, timeout: float | None = None,
    ) -> Path:
        """Fetch one artifact into `dest` (a folder or a file path) and verify its sha256.
        `version` picks a finished version (see `list_versions`); 0 is the current one."""
        return self._fetch(self._listing(job_id, version, timeout), name, dest)

    def download_all(
        self, job_id: str, dest: str | os.PathLike[str] = ".", *, version: int = 0
    ) -> builtins.list[Path]:
        """Every artifact of a completed job (or of its finished `version`) into `dest`."""
        folder = Path(dest)
        folder.mkdir(parents=True, exist_ok=True)
        job = self._listing(job_id, version, None)
        find_artifact(job, job.output_file)  # raises unless the job has completed
        return [self._fetch(job, artifact.name, folder) for artifact in job.artifacts]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> OctaviaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _listing(self, job_id: str, version: int, timeout: float | None) -> pb.Job:
        if version:
            return version_listing(job_id, self.list_versions(job_id, timeout=timeout), version)
        return self.status(job_id, timeout=timeout)

    def _fetch(self, job: pb.Job, name: str, dest: str | os.PathLike[str]) -> Path:
        sink = ArtifactSink(download_path(dest, name), find_artifact(job, name), job.version)
        sink.open()
        try:
            delays = self.retry.delays()
            while True:
                try:
                    self._read_into(sink, job.job_id)
                    return sink.finish()
                except grpc.RpcError as error:
                    delay = next(delays, None)
                    if not is_retryable(error) or delay is None:
                        raise from_rpc_error(error) from error
                    time.sleep(delay)
        finally:
            sink.discard()

    def _read_into(self, sink: ArtifactSink, job_id: str) -> None:
        if sink.complete and sink.offset > 0:
            return
        call = self._stub.ReadArtifact(sink.request(job_id), metadata=self._metadata)
        try:
            for chunk in call:
                sink.write(chunk)
        finally:
            call.cancel()

    def _call(
        self, method: Callable[..., T], request: Any, timeout: float | None, *,
        retry: bool = True,
    ) -> T:
        delays = self.retry.delays() if retry else iter(())
        while True:
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                delay = next(delays, None)
                if not is_retryable(error) or delay is None:
                    raise from_rpc_error(error) from error
            time.sleep(delay)
