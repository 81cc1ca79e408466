"""Who is calling the bridge, and the bearer token to forward to the gRPC server.

Three ways in, checked in this order:

- `Authorization: Bearer <jwt>` — programs, and the page when the user pasted a token.
- `?ticket=<stream ticket>` — the job stream only. `EventSource` cannot send headers, so
  the page trades its token for a short-lived ticket bound to one job and one user
  (`POST /api/v1/jobs/{id}/stream-ticket`). The ticket itself never reaches gRPC: the
  bridge mints a short-lived ordinary token for the ticket's user instead.
- the `octavia_session` cookie — HttpOnly, SameSite=Strict, set by
  `POST /api/v1/session` with a bearer token. It then works for every endpoint,
  `EventSource` and `<audio src>` included, without any token in a URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from octavia.errors import Unauthenticated
from starlette.requests import Request

from server.auth import TokenAuthority
from server.settings import Settings
from server.tracing import trace_metadata

SESSION_COOKIE = "octavia_session"
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Caller:
    subject: str
    token: str
    """An ordinary bearer token for `subject`, forwarded as gRPC metadata."""

    @property
    def metadata(self) -> Metadata:
        return (("authorization", f"Bearer {self.token}"), *trace_metadata())


def authenticate(request: Request) -> Caller:
    """The caller of any endpoint: a bearer token, or else the session cookie."""
    tokens: TokenAuthority = request.app.state.tokens
    headers = request.headers.getlist("authorization")
    if len(headers) > 1:  # a proxy may have checked one, and we would use another
        raise Unauthenticated("send exactly one 'Authorization' header")
    header = headers[0] if headers else None
    if header is not None:
        principal = tokens.verify_header(header)
        return Caller(principal.subject, header.strip().partition(" ")[2].strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return Caller(tokens.verify(cookie).subject, cookie)
    raise Unauthenticated(
        "missing credentials: send 'Authorization: Bearer <token>' "
        "(or open a session with POST /api/v1/session)"
    )


def authenticate_stream(request: Request, job_id: str) -> Caller:
    """The caller of a job stream: a ticket for this job, or any other credential."""
    ticket = request.query_params.get("ticket")
    if ticket is None:
        return authenticate(request)
    tokens: TokenAuthority = request.app.state.tokens
    settings: Settings = request.app.state.settings
    principal = tokens.verify_stream_ticket(ticket, job_id)
    # Only long enough to open the stream: the server checks tokens when a call starts.
    token = tokens.mint(principal.subject, ttl_seconds=settings.stream_ticket_ttl_seconds)
    return Caller(principal.subject, token)
