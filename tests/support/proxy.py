"""A TCP proxy that a test can cut and restore: a database that goes away for a while."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to a target; while cut, every connection is dropped and
    new ones are closed at once (clients see a connection refused/reset, not a hang)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.url = ""
        """With `proxied_database`: the database's URL through this proxy."""
        self.cut = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def disconnect(self) -> None:
        """Cut: drop every open connection and refuse new ones until `restore`."""
        self.cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.cut = False

    async def close(self) -> None:
        self.disconnect()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer),
                             self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()


@contextlib.asynccontextmanager
async def proxied_database() -> AsyncIterator[CuttableProxy]:
    """A fresh PostgreSQL database reached through a cuttable proxy (its `url`)."""
    from .postgres import fresh_database

    with fresh_database() as url:
        parts = urlsplit(url)
        proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        await proxy.start()
        proxy.url = url.replace(f":{parts.port}/", f":{proxy.port}/")
        try:
            yield proxy
        finally:
            await proxy.close()
