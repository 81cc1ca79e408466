"""`python -m bridge`: the bridge alone, against `OCTAVIA_GRPC_TARGET` (or the local
`grpc_host:grpc_port`)."""

from __future__ import annotations

import asyncio
import logging
import signal

from server.settings import Settings

from .run import run_bridge


async def _main() -> None:
    settings = Settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    target = settings.grpc_target or f"{settings.grpc_host}:{settings.grpc_port}"
    await run_bridge(settings, target, stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(_main())


if __name__ == "__main__":
    main()
