"""Octavia's Python SDK: a blocking and an asyncio client for the dubbing job service.

    from octavia import OctaviaClient

    with OctaviaClient("127.0.0.1:50051", token=TOKEN) as client:
        job = client.submit("talk.wav", "es")
        for update in client.watch(job.job_id):
            print(update.job.progress_percentage, update.job.current_step)
        client.download(job.job_id, "dubbed.wav", "out/")

Jobs and updates are the `octavia.v1` protobuf messages; failures are `octavia.errors`.
"""

from ._core import RetryPolicy
from .aio import AsyncOctaviaClient
from .client import OctaviaClient
from .errors import (
    Cancelled,
    ChecksumMismatch,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OctaviaError,
    PermissionDenied,
    Reason,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from .v1 import jobs_pb2 as pb

__all__ = [
    "AsyncOctaviaClient",
    "Cancelled",
    "ChecksumMismatch",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OctaviaClient",
    "OctaviaError",
    "PermissionDenied",
    "Reason",
    "ResourceExhausted",
    "RetryPolicy",
    "Unauthenticated",
    "Unavailable",
    "pb",
]
