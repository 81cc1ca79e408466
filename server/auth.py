"""Tokens: the one place that mints and checks them, so the two can never disagree.

Everything that needs a key builds a `TokenAuthority` from the same `Settings`. When no
secret is configured, a random one is generated once and kept (mode 0600) in the data
directory, so `octavia token` and `octavia serve` on one machine agree with no set-up.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from octavia.errors import Unauthenticated

from .settings import Settings

log = logging.getLogger(__name__)

SECRET_FILE = "jwt-secret"

VERIFIED_TOKENS_KEPT = 4096
"""Tokens whose signature and claims were checked, kept so a client's next request with
the same token skips the cryptography (only its expiry is checked again)."""

STREAM_TICKET = "stream-ticket"
"""`typ` of the short-lived, single-job tickets the bridge hands to `EventSource` URLs.
Never accepted as a bearer token: a ticket leaked from a URL opens one job's stream only."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's `sub`, which owns the jobs it submits."""

    subject: str


class TokenAuthority:
    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.ttl_seconds = settings.token_ttl_seconds
        self._verify_key, self._sign_key = _load_keys(settings)
        # Failures raise, so only tokens that passed are kept.
        self._verified = functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)(self._check)

    def mint(self, subject: str, ttl_seconds: int | None = None, **claims: Any) -> str:
        if self._sign_key is None:
            raise RuntimeError(
                f"{self.algorithm} tokens are signed with a private key: "
                "set OCTAVIA_JWT_PRIVATE_KEY_FILE"
            )
        now = int(time.time())
        payload: dict[str, Any] = {
            "sub": subject,
            "iat": now,
            "exp": now + (ttl_seconds or self.ttl_seconds),
            **claims,
        }
        if self.issuer:
            payload.setdefault("iss", self.issuer)
        if self.audience:
            payload.setdefault("aud", self.audience)
        return jwt.encode(payload, self._sign_key, algorithm=self.algorithm)

    def verify(self, token: str) -> Principal:
        """The caller named by a valid token; Unauthenticated for anything else."""
        claims = self._decode(token)
        if claims.get("typ") == STREAM_TICKET:
            raise Unauthenticated("a stream ticket is not a bearer token")
        return Principal(subject=claims["sub"])

    def mint_stream_ticket(self, subject: str, job_id: str, ttl_seconds: int) -> str:
        """A ticket that opens the stream of `job_id` for `subject` until it expires."""
        return self.mint(subject, ttl_seconds, typ=STREAM_TICKET, job_id=job_id)

    def verify_stream_ticket(self, ticket: str, job_id: str) -> Principal:
        """The caller named by a valid ticket for exactly this job; Unauthenticated otherwise."""
        claims = self._decode(ticket)
        if claims.get("typ") != STREAM_TICKET:
            raise Unauthenticated("not a stream ticket")
        if claims.get("job_id") != job_id:
            raise Unauthenticated("the stream ticket is for another job")
        return Principal(subject=claims["sub"])

    def _decode(self, token: str) -> dict[str, Any]:
        """The token's claims, checked in full the first time it is seen, and for expiry
        every time (a kept token can only have expired since: `nbf` and `iat` were past)."""
        claims = self._verified(token)
        if int(claims["exp"]) <= time.time():
            raise Unauthenticated("token expired")
        return claims

    def _check(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token not yet valid") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthenticated(f"token is missing the {error.claim!r} claim") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token has the wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token has the wrong audience") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise Unauthenticated("token has an empty 'sub' claim")
        return claims

    def verify_header(self, value: str | None) -> Principal:
        """Check an `Authorization: Bearer <token>` value."""
        if not value:
            raise Unauthenticated("missing credentials: send 'authorization: Bearer <token>'")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("malformed authorization: expected 'Bearer <token>'")
        return self.verify(token.strip())


def _load_keys(settings: Settings) -> tuple[Any, Any]:
    if settings.jwt_algorithm.startswith("HS"):
        secret = _hmac_secret(settings)
        return secret, secret
    if settings.jwt_public_key_file is None:
        raise ValueError(f"{settings.jwt_algorithm} needs OCTAVIA_JWT_PUBLIC_KEY_FILE")
    public = settings.jwt_public_key_file.read_bytes()
    private = (
        settings.jwt_private_key_file.read_bytes() if settings.jwt_private_key_file else None
    )
    return public, private


def _hmac_secret(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    path = settings.data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    return _generate_secret(path)


def _generate_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its secret
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    log.warning("No JWT secret configured: generated one and stored it in %s", path)
    return secret
