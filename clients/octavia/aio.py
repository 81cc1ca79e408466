"""The asyncio twin of `OctaviaClient`: the same calls, awaited, on a `grpc.aio` channel."""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
from grpc import aio

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


class AsyncOctaviaClient:
    """A connection to an Octavia server for asyncio code; see `OctaviaClient`.

    Create it inside the event loop that uses it (a `grpc.aio` channel is bound to one).
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
            aio.secure_channel(target, credentials, options=options)
            if credentials is not None
            else aio.insecure_channel(target, options=options)
        )
        self._stub = jobs_pb2_grpc.JobServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = auth_metadata(token)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()

    async def submit(
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
        timeout: float | None = None,  # noqa: ASYNC109 (a gRPC deadline, as in grpc.aio)
    ) -> pb.Job:
        """Upload media and queue a job; see `OctaviaClient.submit`."""
        content, name = await asyncio.to_thread(read_source, source)
        request = submit_request(
            content, filename or name, target_language, source_language, request_id, mix_mode,
            pause_after, webhook_url,
        )
        response: pb.SubmitJobResponse = await self._call(
            self._stub.SubmitJob, request, timeout or max(self.timeout, UPLOAD_TIMEOUT)
        )
        return response.job

    async def status(
        self, job_id: str, *, timeout: float | None = None  # noqa: ASYNC109
    ) -> pb.Job:
        response: pb.GetStatusResponse = await self._call(
            self._stub.GetStatus, pb.GetStatusRequest(job_id=job_id), timeout
        )
        return response.job

    async def cancel(
        self, job_id: str, *, timeout: float | None = None  # noqa: ASYNC109
    ) -> pb.Job:
        """Stop a job; cancelling a finished one returns it unchanged (so retrying is safe)."""
        response: pb.CancelJobResponse = await self._call(
            self._stub.CancelJob, pb.CancelJobRequest(job_id=job_id), timeout
        )
        return response.job

    async def list(
        self, *, limit: int | None = 20, timeout: float | None = None  # noqa: ASYNC109
    ) -> builtins.list[pb.Job]:
        """The caller's jobs, newest first: at most `limit` (None for all)."""
        jobs: list[pb.Job] = []
        token = ""
        while limit is None or len(jobs) < limit:
            size = 100 if limit is None else min(100, limit - len(jobs))
            page: pb.ListJobsResponse = await self._call(
                self._stub.ListJobs, pb.ListJobsRequest(page_size=size, page_token=token), timeout
            )
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                break
        return jobs

    async def list_segments(
        self, job_id: str, *, timeout: float | None = None  # noqa: ASYNC109
    ) -> pb.ListSegmentsResponse:
        """The job's segments, its languages, and whether they may be edited now."""
        response: pb.ListSegmentsResponse = await self._call(
            self._stub.ListSegments, pb.ListSegmentsRequest(job_id=job_id), timeout
        )
        return response

    async def update_segments(
        self, job_id: str, edits: SegmentEdit | Iterable[SegmentEdit | pb.SegmentEdit],
        *, timeout: float | None = None,  # noqa: ASYNC109
    ) -> builtins.list[pb.Segment]:
        """Apply `edits` (all or none); returns every segment as edited. See
        `OctaviaClient.update_segments`."""
        response: pb.UpdateSegmentsResponse = await self._call(
            self._stub.UpdateSegments, update_segments_request(job_id, edits), timeout
        )
        return builtins.list(response.segments)

    async def resume(
        self, job_id: str, *, timeout: float | None = None  # noqa: ASYNC109
    ) -> pb.Job:
        """Continue a job that awaits review, or re-dub a completed one (not retried)."""
        response: pb.ResumeJobResponse = await self._call(
            self._stub.ResumeJob, pb.ResumeJobRequest(job_id=job_id), timeout, retry=False
        )
        return response.job

    async def list_versions(
        self, job_id: str, *, timeout: float | None = None  # noqa: ASYNC109
    ) -> builtins.list[pb.JobVersion]:
        """Every finished version of the job's outputs, oldest first."""
        response: pb.ListVersionsResponse = await self._call(
            self._stub.ListVersions, pb.ListVersionsRequest(job_id=job_id), timeout
        )
        return builtins.list(response.versions)

    async def list_webhook_deliveries(
        self, job_id: str, *, timeout: float | None = None  # noqa: ASYNC109
    ) -> builtins.list[pb.WebhookDelivery]:
        """The job's webhook deliveries and their attempts, oldest first."""
        response: pb.ListWebhookDeliveriesResponse = await self._call(
            self._stub.ListWebhookDeliveries, pb.ListWebhookDeliveriesRequest(job_id=job_id),
            timeout,
        )
        return builtins.list(response.deliveries)

    async def wait(self, job_id: str, *, stop_at_review: bool = True) -> pb.Job:
        """Until the job ends or awaits review; see `OctaviaClient.wait`."""
        job = pb.Job()
        async for update in self.watch(job_id, stop_at_review=stop_at_review):
            job = update.job
        return job

    async def watch(
        self, job_id: str, *, after_sequence: int = 0, stop_at_review: bool = False
    ) -> AsyncIterator[pb.WatchJobResponse]:
        """Every update of a job, once each and in order, until it ends (or, with
        `stop_at_review`, awaits review); resumes by itself after a dropped connection
        from the last update delivered."""
        cursor = WatchCursor(after_sequence, stop_at_review)
        delays = self.retry.delays()
        while True:
            call = self._stub.WatchJob(cursor.request(job_id), metadata=self._metadata)
            try:
                async for message in call:
                    if cursor.accept(message):
                        delays = self.retry.delays()  # a new outage gets a fresh budget
                        yield message
                        if cursor.paused and cursor.still_paused(await self.status(job_id)):
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
            await asyncio.sleep(delay)

    async def download(
        self, job_id: str, name: str, dest: str | os.PathLike[str] = ".",
        *, version: int = 0, timeout: float | None = None,  # noqa: ASYNC109
    ) -> Path:
        """Fetch one artifact into `dest` (a folder or a file path) and verify its sha256.
        `version` picks a finished version (see `list_versions`); 0 is the current one."""
        return await self._fetch(await self._listing(job_id, version, timeout), name, dest)

    async def download_all(
        self, job_id: str, dest: str | os.PathLike[str] = ".", *, version: int = 0
    ) -> builtins.list[Path]:
        """Every artifact of a completed job (or of its finished `version`) into `dest`."""
        folder = Path(dest)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        job = await self._listing(job_id, version, None)
        find_artifact(job, job.output_file)  # raises unless the job has completed
        return [await self._fetch(job, a.name, folder) for a in job.artifacts]

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncOctaviaClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _listing(
        self, job_id: str, version: int, timeout: float | None  # noqa: ASYNC109
    ) -> pb.Job:
        if version:
            versions = await self.list_versions(job_id, timeout=timeout)
            return version_listing(job_id, versions, version)
        return await self.status(job_id, timeout=timeout)

    async def _fetch(self, job: pb.Job, name: str, dest: str | os.PathLike[str]) -> Path:
        sink = ArtifactSink(download_path(dest, name), find_artifact(job, name), job.version)
        await asyncio.to_thread(sink.open)
        try:
            delays = self.retry.delays()
            while True:
                try:
                    await self._read_into(sink, job.job_id)
                    return await asyncio.to_thread(sink.finish)
                except grpc.RpcError as error:
                    delay = next(delays, None)
                    if not is_retryable(error) or delay is None:
                        raise from_rpc_error(error) from error
                    await asyncio.sleep(delay)
        finally:
            await asyncio.to_thread(sink.discard)

    async def _read_into(self, sink: ArtifactSink, job_id: str) -> None:
        if sink.complete and sink.offset > 0:
            return
        call = self._stub.ReadArtifact(sink.request(job_id), metadata=self._metadata)
        try:
            async for chunk in call:
                await asyncio.to_thread(sink.write, chunk)
        finally:
            call.cancel()

    async def _call(
        self,
        method: Callable[..., Awaitable[T]],
        request: Any,
        timeout: float | None,  # noqa: ASYNC109
        *,
        retry: bool = True,
    ) -> T:
        delays = self.retry.delays() if retry else iter(())
        while True:
            try:
                return await method(
                    request, timeout=timeout or self.timeout, metadata=self._metadata
                )
            except grpc.RpcError as error:
                delay = next(delays, None)
                if not is_retryable(error) or delay is None:
                    raise from_rpc_error(error) from error
            await asyncio.sleep(delay)
