"""Exit codes, and the one-line message each failure becomes."""

from __future__ import annotations

from ..errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    OctaviaError,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

OK = 0
JOB_FAILED = 1
"""The job failed or was cancelled (or the request failed for another reason)."""
USAGE = 2
UNREACHABLE = 3
NOT_FOUND = 4
AUTH_FAILED = 5
AWAITING_REVIEW = 6
"""The job paused for review (`--pause-after`): nothing failed, nothing to download yet."""
INTERRUPTED = 130

EPILOG = """\
exit codes:
  0  ok
  1  the job failed or was cancelled (also: any other failed request)
  2  usage error: bad arguments, unreadable file, invalid request or configuration
  3  server unreachable (or it did not answer in time)
  4  job or artifact not found
  5  authentication failed: pass --token or set OCTAVIA_TOKEN
  6  the job awaits review (--pause-after): see `octavia segments`, `edit`, `resume`

Configuration comes from OCTAVIA_* environment variables (and a .env file); the flags
of `serve`, `dub` and `token` override them. Remote commands talk to --server
(default: $OCTAVIA_SERVER, else 127.0.0.1:<OCTAVIA_GRPC_PORT>).
"""


class UsageError(Exception):
    """A mistake on the command line or in the environment: exit 2, one line."""


class JobEnded(Exception):
    """The job this command followed failed or was cancelled: exit 1, one line."""


def exit_code(error: BaseException) -> int:
    match error:
        case UsageError() | InvalidArgument():
            return USAGE
        case Unavailable() | DeadlineExceeded():
            return UNREACHABLE
        case NotFound():
            return NOT_FOUND
        case Unauthenticated() | PermissionDenied():
            return AUTH_FAILED
        case _:
            return JOB_FAILED


def describe(error: BaseException, server: str | None) -> str:
    """The line printed for `error`: what happened, and what to do when that is clear."""
    if isinstance(error, Unavailable | DeadlineExceeded) and server:
        return f"cannot reach the Octavia server at {server}: {_oneline(error)}"
    if isinstance(error, Unauthenticated):
        return f"authentication failed: {_oneline(error)} (pass --token or set OCTAVIA_TOKEN)"
    if isinstance(error, OctaviaError):
        return f"{_oneline(error)} [{error.reason}]"
    return _oneline(error)


def _oneline(error: BaseException) -> str:
    text = error.message if isinstance(error, OctaviaError) else str(error)
    text = text or type(error).__name__
    return " ".join(text.split())
