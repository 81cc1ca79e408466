"""The one error family shared by the server and its clients.

A failure travels as a gRPC status whose details hold a `google.rpc.ErrorInfo`
(domain `octavia.v1`): a machine-readable `reason` and whether a retry can help.
The server raises these; clients get them back, typed, from `from_rpc_error`.
"""

from __future__ import annotations

from typing import ClassVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "octavia.v1"


class Reason:
    """Machine-readable reasons, stable across releases."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNSUPPORTED_LANGUAGE = "UNSUPPORTED_LANGUAGE"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    URI_NOT_ALLOWED = "URI_NOT_ALLOWED"
    MEDIA_UNREADABLE = "MEDIA_UNREADABLE"
    MEDIA_TOO_LONG = "MEDIA_TOO_LONG"
    MEDIA_SILENT = "MEDIA_SILENT"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    ARTIFACT_NOT_FOUND = "ARTIFACT_NOT_FOUND"
    JOB_NOT_FINISHED = "JOB_NOT_FINISHED"
    JOB_NOT_REVIEWABLE = "JOB_NOT_REVIEWABLE"
    """The job is neither awaiting review nor completed (segments edits, ResumeJob)."""
    NO_SEGMENTS = "NO_SEGMENTS"
    """The job has not been transcribed yet."""
    UNAUTHENTICATED = "UNAUTHENTICATED"
    QUEUE_FULL = "QUEUE_FULL"
    TOO_MANY_STREAMS = "TOO_MANY_STREAMS"
    """The caller already holds the most open WatchJob / SSE streams a user may."""
    TOO_MANY_JOBS = "TOO_MANY_JOBS"
    """The caller already has the most pending or processing jobs a user may."""
    MODEL_MISSING = "MODEL_MISSING"
    MODEL_CORRUPT = "MODEL_CORRUPT"
    """A model's files are there but do not load (truncated download, wrong format)."""
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    STAGE_FAILED = "STAGE_FAILED"
    INTERRUPTED = "INTERRUPTED"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    STORAGE_FULL = "STORAGE_FULL"
    """The server's disk (data directory or artifact store) is full; retry later."""
    WEBHOOKS_DISABLED = "WEBHOOKS_DISABLED"
    """A job asked for a webhook, but the server has no secret to sign webhooks with."""
    INTERNAL = "INTERNAL"
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    """Client-side: a downloaded artifact does not match the sha256 the job lists."""


class OctaviaError(Exception):
    """An error with a gRPC status code, a reason for programs and a message for people."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    default_reason: ClassVar[str] = Reason.INTERNAL
    default_retryable: ClassVar[bool] = False

    def __init__(
        self, message: str, *, reason: str | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.retryable = self.default_retryable if retryable is None else retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"

    def to_status(self) -> grpc.Status:
        """The rich gRPC status that carries this error over the wire."""
        info = error_details_pb2.ErrorInfo(
            reason=self.reason,
            domain=DOMAIN,
            metadata={"retryable": "true" if self.retryable else "false"},
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(
            code=self.code.value[0], message=self.message, details=[detail]
        )
        return rpc_status.to_status(status)


class InvalidArgument(OctaviaError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = Reason.INVALID_ARGUMENT


class NotFound(OctaviaError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = Reason.JOB_NOT_FOUND


class FailedPrecondition(OctaviaError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = Reason.JOB_NOT_FINISHED


class Unauthenticated(OctaviaError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = Reason.UNAUTHENTICATED


class ResourceExhausted(OctaviaError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = Reason.QUEUE_FULL
    default_retryable = True


class Unavailable(OctaviaError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = Reason.STORE_UNAVAILABLE
    default_retryable = True


class DeadlineExceeded(OctaviaError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_retryable = True


class Cancelled(OctaviaError):
    code = grpc.StatusCode.CANCELLED


class Internal(OctaviaError):
    code = grpc.StatusCode.INTERNAL


class PermissionDenied(OctaviaError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = Reason.UNAUTHENTICATED


class ChecksumMismatch(OctaviaError):
    """Raised by the client, never by the server: the bytes received are not the artifact's."""

    code = grpc.StatusCode.DATA_LOSS
    default_reason = Reason.CHECKSUM_MISMATCH
    default_retryable = True


_BY_CODE: dict[grpc.StatusCode, type[OctaviaError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        FailedPrecondition,
        Unauthenticated,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Cancelled,
        Internal,
        PermissionDenied,
    )
}


def from_rpc_error(error: grpc.RpcError) -> OctaviaError:
    """Turn a failed call into the typed error, reading the ErrorInfo when present."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    cls = _BY_CODE.get(code, OctaviaError)
    reason: str | None = None
    retryable: bool | None = None
    status = _rich_status(error)
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reason = info.reason
                retryable = info.metadata.get("retryable") == "true"
                break
    typed = cls(message, reason=reason or code.name, retryable=retryable)
    if cls is OctaviaError:
        typed.code = code  # type: ignore[misc]
    return typed


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    try:
        return rpc_status.from_call(error)  # type: ignore[arg-type]
    except (AttributeError, ValueError):
        return None


__all__ = [
    "DOMAIN",
    "Cancelled",
    "ChecksumMismatch",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OctaviaError",
    "PermissionDenied",
    "Reason",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
]
