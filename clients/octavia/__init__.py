"""Octavia's Python SDK: a blocking and an asyncio client for the dubbing job service.

    from octavia import OctaviaClient

    with OctaviaClient("127.0.0.1:50051", token=TOKEN) as client:
        job = client.submit("talk.wav", "es")
        for update in client.watch(job.job_id):
            print(update.job.progress_percentage, update.job.current_step)
        client.download(job.job_id, "dubbed.wav", "out/")

Review before the voice is made: submit with `pause_after=["translating"]`, `wait` until
the job awaits review, `list_segments`, `update_segments(job_id, [SegmentEdit(3,
target_text="…")])`, then `resume` (a completed job is re-dubbed as a new version;
`list_versions` and `download(..., version=N)` reach the older ones).

Receiving webhooks: `octavia.webhooks.verify(body, headers["Octavia-Signature"], SECRET)`
checks the signature and returns the event.

Jobs and updates are the `octavia.v1` protobuf messages; failures are `octavia.errors`.
"""

from . import webhooks
from ._core import RetryPolicy, SegmentEdit
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
from .webhooks import WebhookSignatureError

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
    "SegmentEdit",
    "Unauthenticated",
    "Unavailable",
    "WebhookSignatureError",
    "pb",
    "webhooks",
]
