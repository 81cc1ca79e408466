"""Failures of the machine rather than of a request: a full disk, a database that is away.

They get statuses that tell a client to come back later (RESOURCE_EXHAUSTED /
UNAVAILABLE, retryable) instead of INTERNAL, and the job runner waits out a short
database outage instead of failing the jobs it is running.
"""

from __future__ import annotations

import errno

from octavia.errors import OctaviaError, Reason, ResourceExhausted, Unavailable
from sqlalchemy.exc import DBAPIError, OperationalError


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def is_store_unreachable(error: BaseException) -> bool:
    """The database refused, dropped or locked us out: worth retrying shortly."""
    if isinstance(error, OperationalError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def as_octavia_error(error: BaseException) -> OctaviaError | None:
    """The client-facing error for a machine failure; None for anything else (a bug)."""
    if is_disk_full(error):
        return ResourceExhausted("the server's disk is full; retry later",
                                 reason=Reason.STORAGE_FULL, retryable=True)
    if is_store_unreachable(error):
        return Unavailable("the job store is unreachable; retry shortly",
                           reason=Reason.STORE_UNAVAILABLE, retryable=True)
    return None
