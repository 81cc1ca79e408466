"""`python -m server.distributed [--api|--worker]`: an API replica or a worker (OCTAVIA_*)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from ..settings import Settings


async def _main(role: str) -> None:
    settings = Settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if role == "--worker":
        from .worker import Worker

        await Worker(settings).run(stop)
        return
    from ..app import serve

    await serve(settings.model_copy(update={"run_worker": False}), with_bridge=False)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_main(sys.argv[1] if len(sys.argv) > 1 else "--api"))
