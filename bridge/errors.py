"""Failures as HTTP: every gRPC status maps to one HTTP status, with a JSON body
`{"error": <ErrorInfo reason>, "message": ..., "retryable": ...}`."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from octavia.errors import OctaviaError, Reason, from_rpc_error
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    # FAILED_PRECONDITION is mostly "not yet": JOB_NOT_FINISHED (an artifact of a job that
    # has not completed) or NO_SEGMENTS (not transcribed yet): 425 Too Early; `retryable`
    # tells whether it ever will. JOB_NOT_REVIEWABLE is a 409 (REASON_STATUS).
    grpc.StatusCode.FAILED_PRECONDITION: 425,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 416,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

REASON_STATUS: dict[str, int] = {
    # Editing or resuming a job in a state that does not allow it (running, failed…).
    Reason.JOB_NOT_REVIEWABLE: 409,
    # A webhook_url sent to a server that has no key to sign webhooks with: fix the request.
    "WEBHOOKS_DISABLED": 400,
    # Limits of one request's media (RESOURCE_EXHAUSTED, but no retry helps: 413, not 429).
    Reason.PAYLOAD_TOO_LARGE: 413,
    Reason.MEDIA_TOO_LONG: 413,
}
"""Reasons whose HTTP status differs from their gRPC status's."""

_HTTP_REASON = {400: Reason.INVALID_ARGUMENT, 401: Reason.UNAUTHENTICATED, 404: "NOT_FOUND",
                405: "METHOD_NOT_ALLOWED", 413: Reason.PAYLOAD_TOO_LARGE}


class BridgeError(Exception):
    """A failure decided by the bridge itself, before or instead of a gRPC call."""

    def __init__(
        self, status: int, error: str, message: str, retryable: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.retryable = retryable
        self.headers = dict(headers or {})


def error_response(
    status: int, error: str, message: str, retryable: bool = False,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": error, "message": message, "retryable": retryable}
    return JSONResponse(body, status_code=status, headers=headers)


def from_octavia(error: OctaviaError) -> JSONResponse:
    status = REASON_STATUS.get(error.reason) or HTTP_STATUS.get(error.code, 500)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, error.reason, error.message, error.retryable, headers)


async def handle_rpc_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, grpc.RpcError)
    return from_octavia(from_rpc_error(exc))


async def handle_octavia_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OctaviaError)
    return from_octavia(exc)


async def handle_bridge_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BridgeError)
    headers = {"WWW-Authenticate": "Bearer", **exc.headers} if exc.status == 401 else exc.headers
    return error_response(exc.status, exc.error, exc.message, exc.retryable, headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = _HTTP_REASON.get(exc.status_code, f"HTTP_{exc.status_code}")
    return error_response(exc.status_code, error, str(exc.detail), headers=exc.headers)


EXCEPTION_HANDLERS = {
    grpc.RpcError: handle_rpc_error,
    OctaviaError: handle_octavia_error,
    BridgeError: handle_bridge_error,
    HTTPException: handle_http_exception,
}
