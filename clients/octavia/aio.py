"""The asyncio twin of `OctaviaClient`: the same calls, awaited, on a `grpc.aio` channel."""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import AsyncIterator, Awaitable, Callable
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
    RetryPolicy,
    Source,
    WatchCursor,
    auth_metadata,
    channel_options,
    download_path,
    find_artifact,
    is_retryable,
    read_source,
    submit_request,
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
        timeout: float | None = None,  # noqa: ASYNC109 (a gRPC deadline, as in grpc.aio)
    ) -> pb.Job:
        """Upload media and queue a job; `source` is a file path or the media's bytes."""
        content, name = await asyncio.to_thread(read_source, source)
        request = submit_request(
            content, filename or name, target_language, source_language, request_id, mix_mode
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

    async def watch(
        self, job_id: str, *, after_sequence: int = 0
    ) -> AsyncIterator[pb.WatchJobResponse]:
        """Every update of a job, once each and in order, until it ends; resumes by itself
        after a dropped connection from the last update delivered."""
        cursor = WatchCursor(after_sequence)
        delays = self.retry.delays()
        while True:
            call = self._stub.WatchJob(cursor.request(job_id), metadata=self._metadata)
            try:
                async for message in call:
                    if cursor.accept(message):
                        delays = self.retry.delays()  # a new outage gets a fresh budget
                        yield message
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
        *, timeout: float | None = None,  # noqa: ASYNC109
    ) -> Path:
        """Fetch one artifact into `dest` (a folder or a file path) and verify its sha256."""
        artifact = find_artifact(await self.status(job_id, timeout=timeout), name)
        sink = ArtifactSink(download_path(dest, name), artifact)
        await asyncio.to_thread(sink.open)
        try:
            delays = self.retry.delays()
            while True:
                try:
                    await self._read_into(sink, job_id, name)
                    return await asyncio.to_thread(sink.finish)
                except grpc.RpcError as error:
                    delay = next(delays, None)
                    if not is_retryable(error) or delay is None:
                        raise from_rpc_error(error) from error
                    await asyncio.sleep(delay)
        finally:
            await asyncio.to_thread(sink.discard)

    async def download_all(
        self, job_id: str, dest: str | os.PathLike[str] = "."
    ) -> builtins.list[Path]:
        """Every artifact of a completed job, into the folder `dest`."""
        folder = Path(dest)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        job = await self.status(job_id)
        find_artifact(job, job.output_file)  # raises unless the job has completed
        return [await self.download(job_id, a.name, folder) for a in job.artifacts]

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

    async def _read_into(self, sink: ArtifactSink, job_id: str, name: str) -> None:
        if sink.complete and sink.offset > 0:
            return
        request = pb.ReadArtifactRequest(job_id=job_id, name=name, offset=sink.offset)
        call = self._stub.ReadArtifact(request, metadata=self._metadata)
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
    ) -> T:
        delays = self.retry.delays()
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
