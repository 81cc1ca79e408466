"""Multipart bodies written by hand and requests sent straight through ASGI: what a
hostile client sends, which an HTTP client library would refuse to produce."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

BOUNDARY = "octavia-fuzz-boundary"


def multipart(fields: dict[str, bytes], filename: bytes, content: bytes,
              file_headers: bytes = b"") -> bytes:
    """A multipart/form-data body written by hand, so file names may be any bytes."""
    out = bytearray()
    for name, value in fields.items():
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                .encode() + value + b"\r\n")
    out += (f"--{BOUNDARY}\r\n".encode()
            + b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
            + file_headers + b"Content-Type: application/octet-stream\r\n\r\n" + content
            + b"\r\n")
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


FORM = f"multipart/form-data; boundary={BOUNDARY}"


async def asgi(
    app: Starlette, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, bytes]:
    """POST /api/v1/jobs with exactly these headers and body chunks (httpx would fix a
    wrong Content-Length; a hostile client does not)."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/v1/jobs", "raw_path": b"/api/v1/jobs",
        "query_string": b"", "root_path": "", "server": ("bridge", 80),
        "client": ("127.0.0.1", 1234),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        return {"type": "http.disconnect"}

    status, body = 0, bytearray()

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)  # type: ignore[arg-type]
    return status, bytes(body)


def chunks(data: bytes, size: int = 16 * 1024) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]
