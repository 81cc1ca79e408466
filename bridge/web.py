"""The public endpoints: the demo page, its JS modules, and health."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

HEALTH_SERVICE = "octavia.v1.JobService"
HEALTH_TIMEOUT = 2.0

# Scripts only from this origin; results may be played from blob: URLs.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "media-src 'self' blob:; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def web_dir() -> Path:
    """`clients/web` in a checkout; `bridge/web` in a wheel."""
    checkout = Path(__file__).resolve().parents[1] / "clients" / "web"
    return checkout if checkout.is_dir() else Path(__file__).parent / "web"


async def index(request: Request) -> Response:
    return FileResponse(web_dir() / "index.html", headers=PAGE_HEADERS)


async def healthz(request: Request) -> Response:
    check = request.app.state.health.Check
    try:
        reply = await check(health_pb2.HealthCheckRequest(service=HEALTH_SERVICE),
                            timeout=HEALTH_TIMEOUT)
    except grpc.RpcError as error:
        code = error.code()
        return JSONResponse({"status": "unavailable", "grpc": code.name.lower()},
                            status_code=503)
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status).lower()
    return JSONResponse({"status": name}, status_code=200 if serving else 503,
                        headers={"Cache-Control": "no-store"})


class _StaticFiles(StaticFiles):
    """StaticFiles answering 404, not 500, for a path with a NUL byte (`os.stat` raises
    ValueError for it, which Starlette does not catch)."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if "\x00" in path:
            return "", None
        return super().lookup_path(path)


def routes() -> list[Route | Mount]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/web", _StaticFiles(directory=web_dir(), check_dir=False), name="web"),
    ]
