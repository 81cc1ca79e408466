"""The cookie session: the page's own login, so nothing secret ever rides in a URL.

`POST /api/v1/session` with `Authorization: Bearer <jwt>` stores that token in an
HttpOnly, SameSite=Strict cookie (Secure over HTTPS) that expires with the token; from
then on the browser is authenticated everywhere, `EventSource` and `<audio>` included.
`GET` says who the session belongs to; `DELETE` ends it.
"""

from __future__ import annotations

import time

import jwt
from octavia.errors import Unauthenticated
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import SESSION_COOKIE, authenticate


async def open_session(request: Request) -> Response:
    if request.headers.get("authorization") is None:
        raise Unauthenticated("send the token the session keeps: 'Authorization: Bearer <token>'")
    caller = authenticate(request)
    # Signature and expiry were just checked; only the expiry is read here.
    expires = int(jwt.decode(caller.token, options={"verify_signature": False})["exp"])
    response = JSONResponse({"subject": caller.subject, "expires_at": expires},
                            headers={"Cache-Control": "no-store"})
    response.set_cookie(
        SESSION_COOKIE, caller.token, max_age=max(0, expires - int(time.time())),
        path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )
    return response


async def session_info(request: Request) -> Response:
    caller = authenticate(request)
    return JSONResponse({"subject": caller.subject}, headers={"Cache-Control": "no-store"})


async def close_session(request: Request) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


ROUTES = [
    Route("/api/v1/session", open_session, methods=["POST"]),
    Route("/api/v1/session", session_info, methods=["GET"]),
    Route("/api/v1/session", close_session, methods=["DELETE"]),
]
