"""`octavia`: dub a file in one command, run the service, or drive a running one.

The entry point parses the command line, builds the one `Settings` (environment, `.env`,
then flags), runs the command, and turns every failure into one line and an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import OctaviaError
from . import _parser
from ._exit import INTERRUPTED, JOB_FAILED, USAGE, JobEnded, UsageError, describe, exit_code
from ._remote import Io

if TYPE_CHECKING:
    from server.settings import Settings

REMOTE_COMMANDS = ("submit", "status", "watch", "cancel", "jobs", "download")
REVIEW_COMMANDS = ("segments", "edit", "resume", "versions")


def main(argv: Sequence[str] | None = None) -> int:
    io = Io()
    server: str | None = None
    try:
        try:
            args = _parser.build().parse_args(argv)
        except SystemExit as done:  # --help / --version
            return int(done.code or 0)
        settings = load_settings(args)
        io = Io(as_json=getattr(args, "json", False))
        return _dispatch(args, settings, io)
    except (OctaviaError, UsageError, JobEnded) as error:
        server = getattr(error, "server", None)
        io.err.print(f"octavia: error: {describe(error, server)}", markup=False)
        return exit_code(error)
    except KeyboardInterrupt:
        io.err.print("interrupted")
        return INTERRUPTED


def load_settings(args: argparse.Namespace) -> Settings:
    """The one Settings of this run: OCTAVIA_* variables and .env, overridden by flags."""
    from pydantic import ValidationError

    from server.settings import Settings

    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.command == "serve":
        if args.grpc_port is not None:
            overrides["grpc_port"] = args.grpc_port
        if args.http_port is not None:
            overrides["http_port"] = args.http_port
        if args.no_worker:
            overrides["run_worker"] = False
    if args.command == "worker" and args.concurrency is not None:
        overrides["concurrency"] = args.concurrency
    if args.command == "dub" and not args.server:
        overrides.update(grpc_host="127.0.0.1", grpc_port=0)  # in-process: any free port
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()
        )
        raise UsageError(f"invalid configuration: {problems}") from None


def _dispatch(args: argparse.Namespace, settings: Settings, io: Io) -> int:
    from . import _connect, _local, _models, _remote, _review

    if args.command == "serve":
        return _run(_local.serve(args, settings, io))
    if args.command == "worker":
        return _run(_local.worker(args, settings, io))
    if args.command == "token":
        return _local.token(args, settings, io)
    if args.command == "models":
        return _models.run(args, settings, io)
    if args.command == "dub":
        remote = _connect.resolve(args.server, args.token, settings) if args.server else None
        with _naming(remote.address if remote else None):
            return _run(_remote.dub(args, settings, remote, io), interrupted=JOB_FAILED)
    remote = _connect.resolve(args.server, args.token, settings)
    command = getattr(_review if args.command in REVIEW_COMMANDS else _remote, args.command)
    with _naming(remote.address):
        return _run(command(args, remote, io))


def _run(command: Coroutine[Any, Any, int], interrupted: int = INTERRUPTED) -> int:
    async def guarded() -> int:
        try:
            return await command
        except asyncio.CancelledError:  # Ctrl-C: the command has cleaned up; exit quietly
            return interrupted

    return asyncio.run(guarded())


class _naming:
    """Tags errors escaping the block with the server address, for the error line."""

    def __init__(self, address: str | None) -> None:
        self.address = address

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        if isinstance(exc, OctaviaError):
            exc.server = self.address  # type: ignore[attr-defined]


__all__ = ["USAGE", "main"]

if __name__ == "__main__":
    sys.exit(main())
