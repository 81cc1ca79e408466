"""The commands that need no server: serve, token."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from ._connect import default_subject
from ._exit import OK
from ._remote import Io

if TYPE_CHECKING:
    from server.settings import Settings


async def serve(args: argparse.Namespace, settings: Settings, io: Io) -> int:
    from rich.logging import RichHandler

    from server.app import serve as run

    logging.basicConfig(
        level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=io.err)]
    )
    await run(settings, with_bridge=not args.no_bridge)
    return OK


async def worker(args: argparse.Namespace, settings: Settings, io: Io) -> int:
    import asyncio
    import signal

    from rich.logging import RichHandler

    from ._exit import UsageError

    if settings.queue != "procrastinate" or not settings.uses_postgres:
        raise UsageError("a worker takes jobs from the shared queue: set "
                         "OCTAVIA_QUEUE=procrastinate and a PostgreSQL OCTAVIA_DATABASE_URL")
    from server.distributed.worker import Worker

    logging.basicConfig(
        level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=io.err)]
    )
    from server.logs import configure_logging

    configure_logging(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await Worker(settings).run(stop)
    return OK


def token(args: argparse.Namespace, settings: Settings, io: Io) -> int:
    from server.auth import TokenAuthority

    if args.ttl is not None and args.ttl <= 0:
        from ._exit import UsageError

        raise UsageError("--ttl must be a positive number of seconds")
    minted = TokenAuthority(settings).mint(args.sub or default_subject(), args.ttl)
    io.out.out(minted, highlight=False)
    return OK
