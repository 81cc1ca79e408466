"""The blocking client: one channel, typed errors, retries where they are safe."""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc

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
        timeout: float | None = None,
    ) -> pb.Job:
        """Upload media and queue a job; `source` is a file path or the media's bytes."""
        content, name = read_source(source)
        request = submit_request(
            content, filename or name, target_language, source_language, request_id, mix_mode
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

    def watch(self, job_id: str, *, after_sequence: int = 0) -> Iterator[pb.WatchJobResponse]:
        """Every update of a job, once each and in order, until it ends.

        The first update is the current snapshot (or, with `after_sequence`, the stored
        events after it). A dropped connection is resumed from the last update delivered.
        """
        cursor = WatchCursor(after_sequence)
        delays = self.retry.delays()
        while True:
            call = self._stub.WatchJob(cursor.request(job_id), metadata=self._metadata)
            try:
                for message in call:
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
            time.sleep(delay)

    def download(
        self, job_id: str, name: str, dest: str | os.PathLike[str] = ".",
        *, timeout: float | None = None,
    ) -> Path:
        """Fetch one artifact into `dest` (a folder or a file path) and verify its sha256."""
        artifact = find_artifact(self.status(job_id, timeout=timeout), name)
        sink = ArtifactSink(download_path(dest, name), artifact)
        sink.open()
        try:
            delays = self.retry.delays()
            while True:
                try:
                    self._read_into(sink, job_id, name)
                    return sink.finish()
                except grpc.RpcError as error:
                    delay = next(delays, None)
                    if not is_retryable(error) or delay is None:
                        raise from_rpc_error(error) from error
                    time.sleep(delay)
        finally:
            sink.discard()

    def download_all(
        self, job_id: str, dest: str | os.PathLike[str] = "."
    ) -> builtins.list[Path]:
        """Every artifact of a completed job, into the folder `dest`."""
        folder = Path(dest)
        folder.mkdir(parents=True, exist_ok=True)
        job = self.status(job_id)
        find_artifact(job, job.output_file)  # raises unless the job has completed
        return [self.download(job_id, artifact.name, folder) for artifact in job.artifacts]

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

    def _read_into(self, sink: ArtifactSink, job_id: str, name: str) -> None:
        if sink.complete and sink.offset > 0:
            return
        request = pb.ReadArtifactRequest(job_id=job_id, name=name, offset=sink.offset)
        call = self._stub.ReadArtifact(request, metadata=self._metadata)
        try:
            for chunk in call:
                sink.write(chunk)
        finally:
            call.cancel()

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        delays = self.retry.delays()
        while True:
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                delay = next(delays, None)
                if not is_retryable(error) or delay is None:
                    raise from_rpc_error(error) from error
            time.sleep(delay)
