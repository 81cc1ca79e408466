"""Building requests and following jobs through the real gRPC API."""

from __future__ import annotations

from collections.abc import Sequence

from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc

Metadata = Sequence[tuple[str, str]]


def submit_request(media: bytes, **fields: object) -> pb.SubmitJobRequest:
    values: dict[str, object] = {"content": media, "filename": "clip.wav", "target_language": "es"}
    values.update(fields)
    return pb.SubmitJobRequest(**values)  # type: ignore[arg-type]


async def submit(
    stub: jobs_pb2_grpc.JobServiceStub, media: bytes, auth: Metadata, **fields: object
) -> pb.Job:
    response = await stub.SubmitJob(submit_request(media, **fields), metadata=auth)
    return response.job


async def watch_all(
    stub: jobs_pb2_grpc.JobServiceStub, job_id: str, auth: Metadata, after: int = 0
) -> list[pb.WatchJobResponse]:
    """Every message of a WatchJob stream, until the server ends it."""
    call = stub.WatchJob(pb.WatchJobRequest(job_id=job_id, after_sequence=after), metadata=auth)
    return [message async for message in call]


async def watch_until(
    stub: jobs_pb2_grpc.JobServiceStub, job_id: str, auth: Metadata, status: int, after: int = 1
) -> list[pb.WatchJobResponse]:
    """The messages of a WatchJob stream up to the first that puts the job in `status`
    (e.g. AWAITING_REVIEW, which does not end the stream)."""
    messages = []
    call = stub.WatchJob(pb.WatchJobRequest(job_id=job_id, after_sequence=after), metadata=auth)
    async for message in call:
        messages.append(message)
        if message.job.status == status:
            call.cancel()
            return messages
    final = messages[-1].job if messages else None
    raise AssertionError(f"the stream ended before status {status}: {final}")
