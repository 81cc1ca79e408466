"""Signing and verifying Octavia's webhooks.

Every webhook is a POST whose JSON body is signed with the server's `OCTAVIA_WEBHOOK_SECRET`:

    Octavia-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

A receiver checks it with `verify` before trusting the body:

    from octavia.webhooks import WebhookSignatureError, verify

    try:
        payload = verify(request_body, request.headers["Octavia-Signature"], SECRET)
    except WebhookSignatureError:
        return 400

`verify` compares signatures in constant time and refuses a timestamp outside the
tolerance window, so a captured request cannot be replayed later. Deliveries are
at least once: deduplicate on `payload["delivery_id"]` (also the `Octavia-Delivery` header).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

SIGNATURE_HEADER = "Octavia-Signature"
DELIVERY_HEADER = "Octavia-Delivery"
EVENT_HEADER = "Octavia-Event"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300.0


class WebhookSignatureError(ValueError):
    """The webhook's signature header is missing, malformed, wrong or too old."""


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `f"{timestamp}.{body}"` under `secret`."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The `Octavia-Signature` header value for `body`, stamped now (or at `timestamp`)."""
    if not secret:
        raise ValueError("a webhook secret is required to sign")
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={stamp},{SCHEME}={signature(body, secret, stamp)}"


def verify(
    body: bytes,
    header: str,
    secret: str,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """Check the `Octavia-Signature` header of a webhook and return its parsed JSON body.

    `body` must be the raw bytes received, before any JSON parsing. Raises
    `WebhookSignatureError` when the header is malformed, no signature matches, or the
    timestamp is more than `tolerance_seconds` away from `now` (default: the clock).
    """
    if not secret:
        raise WebhookSignatureError("no secret to verify the webhook with")
    stamp, candidates = _parse(header)
    moment = time.time() if now is None else now
    if abs(moment - stamp) > tolerance_seconds:
        raise WebhookSignatureError(
            f"the webhook's timestamp is {abs(moment - stamp):.0f} s away from now, "
            f"outside the {tolerance_seconds:.0f} s tolerance")
    expected = signature(body, secret, stamp).encode()
    # Every candidate is compared (each in constant time): several `v1` entries may be sent
    # while a secret is rotated.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise WebhookSignatureError("the webhook's signature does not match its body")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookSignatureError("the webhook's body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookSignatureError("the webhook's body is not a JSON object")
    return payload


def _parse(header: str) -> tuple[int, list[str]]:
    stamp: int | None = None
    candidates: list[str] = []
    for part in (header or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                stamp = int(value)
            except ValueError:
                raise WebhookSignatureError("malformed timestamp in the signature header") \
                    from None
        elif key == SCHEME:
            candidates.append(value.strip().lower())
    if stamp is None or not candidates:
        raise WebhookSignatureError(
            f"malformed {SIGNATURE_HEADER} header: expected 't=<unix seconds>,v1=<hex>'")
    return stamp, candidates
