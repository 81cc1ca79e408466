"""Which server a remote command talks to, and with which token."""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.settings import Settings


@dataclass(frozen=True)
class Remote:
    address: str
    token: str | None


def default_subject() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        return "octavia"


def resolve(server: str | None, token: str | None, settings: Settings) -> Remote:
    """--server/--token, else $OCTAVIA_SERVER/$OCTAVIA_TOKEN, else the local defaults."""
    address = server or os.environ.get("OCTAVIA_SERVER") or local_address(settings)
    return Remote(address, token or os.environ.get("OCTAVIA_TOKEN") or local_token(settings))


def local_address(settings: Settings) -> str:
    host = settings.grpc_host
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host
    return f"{host}:{settings.grpc_port}"


def local_token(settings: Settings) -> str | None:
    """A token minted with the server's own key, when this process can read that key.

    Never creates a secret: a fresh one would match no running server.
    """
    from server.auth import SECRET_FILE, TokenAuthority

    if settings.jwt_algorithm.startswith("HS"):
        secret_file = settings.data_dir / SECRET_FILE
        if settings.jwt_secret is None and not os.access(secret_file, os.R_OK):
            return None
    elif settings.jwt_private_key_file is None:
        return None
    try:
        return TokenAuthority(settings).mint(default_subject())
    except (OSError, ValueError, RuntimeError):
        return None


@asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[Remote]:
    """The whole service in this event loop (no bridge), for the length of the block."""
    from server.app import OctaviaServer

    # The service's log (a failed job's traceback included) goes to a file, not under the
    # progress display; the error line points there.
    handler = _log_to(settings.data_dir / LOG_FILE)
    try:
        service = OctaviaServer(settings)
        await service.start()
        try:
            yield Remote(service.address, service.tokens.mint(default_subject()))
        finally:
            await service.stop(grace=1.0)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


LOG_FILE = "octavia-dub.log"


def _log_to(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler
