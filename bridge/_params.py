"""Reading and checking request parameters."""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request

from .errors import BridgeError

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(raw: str) -> str | None:
    """`raw` in the usual UUID spelling, or None when it is not a UUID."""
    if CANONICAL_UUID.fullmatch(raw):
        return raw  # already as the server spells it; parsing it costs more than the match
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def canonical(raw: str) -> str:
    """The job id in its usual spelling when it is a UUID; `raw` otherwise."""
    return _uuid(raw) or raw


def job_id(request: Request) -> str:
    raw: str = request.path_params["job_id"]
    value = _uuid(raw)
    if value is None:
        raise BridgeError(
            400, "INVALID_ARGUMENT",
            f"malformed job id {raw[:64]!r}: expected a UUID such as "
            "'123e4567-e89b-12d3-a456-426614174000'",
        )
    return value


def last_event_id(request: Request) -> int:
    """`Last-Event-ID` (sent by `EventSource` when it reconnects) or `?last_event_id=`."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= INT64_MAX:
        raise BridgeError(400, "INVALID_ARGUMENT",
                          f"Last-Event-ID must be an event id this stream sent, not {raw[:32]!r}")
    return value


def int_query(request: Request, name: str, default: int) -> int:
    """An int32 query parameter (the type of the RPC field it feeds)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BridgeError(400, "INVALID_ARGUMENT", f"{name} must be an integer") from None
    if not -INT32_MAX - 1 <= value <= INT32_MAX:
        raise BridgeError(400, "INVALID_ARGUMENT", f"{name} is out of range")
    return value
