"""The JobService handlers: protobuf in, domain calls, protobuf out. Errors are raised as
`OctaviaError` and turned into statuses by the interceptor."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import mimetypes
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

from grpc import aio
from octavia.errors import FailedPrecondition, InvalidArgument, NotFound, Reason
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc

from . import logs, review, submission, webhooks
from .artifacts import CHUNK, ArtifactStore, check_artifact_name
from .convert import artifact_to_proto, event_to_proto, job_to_proto, snapshot_to_watch, timestamp
from .events import EventBus
from .jobs import EventType, Status
from .limits import StreamQuota, check_active_jobs
from .metrics import Metrics
from .principal import current_principal
from .runner import Dispatcher
from .settings import Settings
from .store import JobRecord, JobStore

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

Context = aio.ServicerContext[Any, Any]


class JobService(jobs_pb2_grpc.JobServiceServicer):
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        bus: EventBus,
        dispatcher: Dispatcher,
        artifacts: ArtifactStore,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.bus = bus
        self.dispatcher = dispatcher
        self.artifacts = artifacts
        self.stream_quota = StreamQuota(settings.max_streams_per_user)

    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: Context
    ) -> pb.SubmitJobResponse:
        owner = current_principal().subject
        submission.check_request(request, self.settings)
        target = submission.check_language(
            request.target_language, "target_language", required=True
        )
        source_language = submission.check_language(
            request.source_language, "source_language", required=False
        )
        if request.request_id:
            existing = await self.store.find_request(owner, request.request_id)
            if existing is not None:
                return pb.SubmitJobResponse(job=job_to_proto(existing.snapshot))
        await check_active_jobs(self.store, self.settings, owner)
        job_id = submission.new_job_id()
        logs.set_field("job_id", job_id)
        source = await asyncio.to_thread(submission.store_source, request, job_id, self.settings)
        try:
            duration = await asyncio.to_thread(submission.probe_source, source, self.settings)
            record = submission.new_record(
                request,
                job_id=job_id,
                owner=owner,
                source=source,
                duration=duration,
                target_language=target or "",
                source_language=source_language,
            )
            if self._shares_source(source):
                await asyncio.to_thread(self.artifacts.save_source, job_id, source.path)
            event, created = await self.dispatcher.submit(record)
        except BaseException:
            await asyncio.to_thread(self._discard_submission, source, job_id)
            raise
        if not created:
            await asyncio.to_thread(self._discard_submission, source, job_id)
        else:
            if self.metrics is not None:
                self.metrics.jobs_submitted.inc()
            log.info("job submitted (%s → %s)", source_language or "auto", target)
        return pb.SubmitJobResponse(job=job_to_proto(event.snapshot))

    def _shares_source(self, source: submission.Source) -> bool:
        """Whether an upload is copied to the artifact store, for workers on other machines."""
        return source.owned and self.settings.queue != "embedded"

    def _discard_submission(self, source: submission.Source, job_id: str) -> None:
        submission.discard_source(source)
        if self._shares_source(source):
            self.artifacts.discard(job_id)

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: Context
    ) -> pb.GetStatusResponse:
        job_id = submission.check_job_id(request.job_id)
        snapshot = await self.store.snapshot(job_id, current_principal().subject)
        return pb.GetStatusResponse(job=job_to_proto(snapshot))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: Context
    ) -> AsyncIterator[pb.WatchJobResponse]:
        job_id = submission.check_job_id(request.job_id)
        if request.after_sequence < 0:
            raise InvalidArgument("after_sequence must be 0 or a sequence the stream sent")
        owner = current_principal().subject
        streams = self.metrics.watch_stream() if self.metrics is not None else _nothing()
        # Subscribe before reading the store, so nothing published in between is missed;
        # anything read twice is dropped by its sequence.
        with self.stream_quota.slot(owner), streams, self.bus.subscribe(job_id) as live:
            record = await self.store.get(job_id, owner)
            if request.after_sequence > record.sequence:
                raise InvalidArgument(
                    f"after_sequence {request.after_sequence} is past the job's last event "
                    f"({record.sequence}): pass a sequence the stream sent")
            last = request.after_sequence
            if last == 0:
                snapshot = await self.store.snapshot(job_id, owner)
                yield snapshot_to_watch(snapshot)
                last = snapshot["sequence"]
                if snapshot["status"] in ("completed", "failed", "cancelled"):
                    return
            else:
                for event in await self.store.events_after(job_id, last):
                    yield event_to_proto(event)
                    last = event.sequence
                    if EventType(event.type).is_terminal:
                        return
                if record.is_terminal and last >= record.sequence:
                    return
            while True:
                event = await live.get()
                if event.sequence <= last:
                    continue
                # Converted once per event, however many watchers it goes to.
                yield self.bus.encoded(event, event_to_proto)
                last = event.sequence
                if EventType(event.type).is_terminal:
                    return

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: Context
    ) -> pb.CancelJobResponse:
        job_id = submission.check_job_id(request.job_id)
        owner = current_principal().subject
        before = await self.store.get(job_id, owner)
        snapshot = await self.dispatcher.cancel(job_id, owner)
        if before.status == Status.AWAITING_REVIEW and snapshot["status"] == Status.CANCELLED:
            # No engine runs a paused job to clean up after it: its checkpoints go here.
            await asyncio.to_thread(self.artifacts.discard, job_id)
        return pb.CancelJobResponse(job=job_to_proto(snapshot))

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: Context
    ) -> pb.ListJobsResponse:
        if request.page_size < 0:
            raise InvalidArgument("page_size must not be negative")
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = _decode_page_token(request.page_token) if request.page_token else None
        snapshots = await self.store.list_jobs(current_principal().subject, size + 1, before)
        page, more = snapshots[:size], len(snapshots) > size
        token = _encode_page_token(page[-1]) if more else ""
        return pb.ListJobsResponse(jobs=[job_to_proto(s) for s in page], next_page_token=token)

    async def ReadArtifact(
        self, request: pb.ReadArtifactRequest, context: Context
    ) -> AsyncIterator[pb.ReadArtifactResponse]:
        job_id = submission.check_job_id(request.job_id)
        name = check_artifact_name(request.name)
        if request.offset < 0 or request.length < 0:
            raise InvalidArgument("offset and length must not be negative")
        if request.version < 0:
            raise InvalidArgument("version must be 0 (the current one) or a listed version")
        record = await self.store.get(job_id, current_principal().subject)
        version = request.version or record.version
        listed = next((a for a in _artifacts_of(record, version) if a["name"] == name), None)
        if listed is None:
            raise NotFound(f"job {job_id} has no artifact {name!r}",
                           reason=Reason.ARTIFACT_NOT_FOUND)
        end = _range_end(request.offset, request.length, int(listed["size_bytes"]))
        handle = await asyncio.to_thread(self.artifacts.open, job_id, name, version)
        try:
            first = True
            async for position, data in _read_range(_reader(handle), request.offset, end):
                message = pb.ReadArtifactResponse(offset=position, data=data)
                if first:
                    message.artifact.CopyFrom(artifact_to_proto(listed))
                    first = False
                yield message
        finally:
            await asyncio.to_thread(handle.close)

    async def ReadSource(
        self, request: pb.ReadSourceRequest, context: Context
    ) -> AsyncIterator[pb.ReadSourceResponse]:
        job_id = submission.check_job_id(request.job_id)
        if request.offset < 0 or request.length < 0:
            raise InvalidArgument("offset and length must not be negative")
        record = await self.store.get(job_id, current_principal().subject)
        path = Path(record.media_path)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except OSError:
            raise NotFound(f"the source media of job {job_id} is no longer stored",
                           reason=Reason.ARTIFACT_NOT_FOUND) from None
        end = _range_end(request.offset, request.length, size)
        filename = record.source_filename or path.name
        media_type = (mimetypes.guess_type(filename)[0] or mimetypes.guess_type(path.name)[0]
                      or "application/octet-stream")
        first = True
        # Each chunk opens the file afresh: no handle outlives a thread call, so a cancel
        # at any await leaves nothing open.
        async for position, data in _read_range(partial(_read_file, path), request.offset, end):
            message = pb.ReadSourceResponse(offset=position, data=data)
            if first:
                message.filename, message.media_type = filename, media_type
                message.size_bytes = size
                first = False
            yield message

    async def ListSegments(
        self, request: pb.ListSegmentsRequest, context: Context
    ) -> pb.ListSegmentsResponse:
        job_id = submission.check_job_id(request.job_id)
        record = await self.store.get(job_id, current_principal().subject)
        found = await asyncio.to_thread(
            review.read_segments, self.artifacts.checkpoints(job_id), record)
        return pb.ListSegmentsResponse(
            segments=[_segment_to_proto(s) for s in found.segments],
            source_language=found.source_language, target_language=found.target_language,
            editable=record.status in review.EDITABLE)

    async def UpdateSegments(
        self, request: pb.UpdateSegmentsRequest, context: Context
    ) -> pb.UpdateSegmentsResponse:
        job_id = submission.check_job_id(request.job_id)
        changes = [_change_from_proto(edit) for edit in request.edits]
        checkpoints = self.artifacts.checkpoints(job_id)
        edited = await self.store.with_locked(
            job_id, current_principal().subject,
            lambda record: review.edit_segments(checkpoints, record, changes))
        log.info("job %s: %d segment(s) edited", job_id, len(changes))
        return pb.UpdateSegmentsResponse(segments=[_segment_to_proto(s) for s in edited.segments])

    async def ResumeJob(
        self, request: pb.ResumeJobRequest, context: Context
    ) -> pb.ResumeJobResponse:
        job_id = submission.check_job_id(request.job_id)
        owner = current_principal().subject
        await self.store.get(job_id, owner)  # NotFound for strangers
        await self.dispatcher.requeue(job_id, review.resumption)
        return pb.ResumeJobResponse(job=job_to_proto(await self.store.snapshot(job_id, owner)))

    async def ListVersions(
        self, request: pb.ListVersionsRequest, context: Context
    ) -> pb.ListVersionsResponse:
        job_id = submission.check_job_id(request.job_id)
        record = await self.store.get(job_id, current_principal().subject)
        versions = []
        for entry in _versions_of(record):
            version = pb.JobVersion(
                version=entry["version"], output_file=entry["output_file"] or "",
                artifacts=[artifact_to_proto(a) for a in entry["artifacts"]])
            stamp = timestamp(entry["completed_at"])
            if stamp is not None:
                version.completed_at.CopyFrom(stamp)
            versions.append(version)
        return pb.ListVersionsResponse(versions=versions)

    async def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: Context
    ) -> pb.ListWebhookDeliveriesResponse:
        job_id = submission.check_job_id(request.job_id)
        await self.store.get(job_id, current_principal().subject)  # NotFound for strangers
        rows = await self.store.read_with(webhooks.deliveries_of(job_id))
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[webhooks.delivery_to_proto(row) for row in rows])


def _range_end(offset: int, length: int, size: int) -> int:
    """The end of the byte range `offset`/`length` (0: to the end) of a `size`-byte file."""
    if offset > size or (offset == size and size > 0):
        raise InvalidArgument(f"offset {offset} is past the end ({size} bytes)")
    return size if length == 0 else min(size, offset + length)


async def _read_range(
    read: Callable[[int, int], bytes], offset: int, end: int
) -> AsyncIterator[tuple[int, bytes]]:
    """`(position, data)` chunks from `offset` to `end`, each read in a thread by
    `read(position, size)`; at least one, empty for an empty file."""
    position = offset
    first = True
    while position < end or first:
        first = False
        data = await asyncio.to_thread(read, position, min(CHUNK, end - position))
        yield position, data
        if not data:
            break
        position += len(data)


def _reader(handle: IO[bytes]) -> Callable[[int, int], bytes]:
    def read(position: int, size: int) -> bytes:
        if handle.tell() != position:
            handle.seek(position)
        return handle.read(size)

    return read


def _read_file(path: Path, position: int, size: int) -> bytes:
    with path.open("rb") as file:
        file.seek(position)
        return file.read(size)


def _versions_of(record: JobRecord) -> list[dict[str, Any]]:
    """The finished versions of a job's outputs (a job stored before versions existed
    has its one completed version only in `artifacts`)."""
    versions = list(record.versions or [])
    if not versions and record.status == Status.COMPLETED:
        completed = record.completed_at.isoformat() if record.completed_at else None
        versions = [{"version": record.version, "completed_at": completed,
                     "output_file": record.output_file, "artifacts": record.artifacts or []}]
    return versions


def _artifacts_of(record: JobRecord, version: int) -> list[dict[str, Any]]:
    """The artifacts of one finished version; FAILED_PRECONDITION while it is being made."""
    for entry in _versions_of(record):
        if entry["version"] == version:
            return list(entry["artifacts"])
    if version == record.version:
        raise FailedPrecondition(
            f"job {record.id} is {record.status}; artifacts exist once it has completed",
            reason=Reason.JOB_NOT_FINISHED,
            retryable=record.status in (Status.PENDING, Status.PROCESSING),
        )
    raise NotFound(f"job {record.id} has no version {version}", reason=Reason.ARTIFACT_NOT_FOUND)


def _segment_to_proto(segment: review.SegmentView) -> pb.Segment:
    return pb.Segment(index=segment.index, start_seconds=segment.start,
                      end_seconds=segment.end, speaker=segment.speaker,
                      source_text=segment.source_text, target_text=segment.target_text)


def _change_from_proto(edit: pb.SegmentEdit) -> review.SegmentChange:
    return review.SegmentChange(
        index=edit.index,
        source_text=edit.source_text if edit.HasField("source_text") else None,
        target_text=edit.target_text if edit.HasField("target_text") else None,
        start=edit.start_seconds if edit.HasField("start_seconds") else None,
        end=edit.end_seconds if edit.HasField("end_seconds") else None,
    )


def _nothing() -> contextlib.nullcontext[None]:
    return contextlib.nullcontext()


def _encode_page_token(snapshot: dict[str, Any]) -> str:
    raw = f"{snapshot['created_at']}|{snapshot['job_id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_page_token(token: str) -> tuple[datetime, str]:
    try:
        created, job_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), submission.check_job_id(job_id)
    except (ValueError, binascii.Error, UnicodeDecodeError, InvalidArgument):
        raise InvalidArgument("malformed page_token: pass the next_page_token you got") from None
