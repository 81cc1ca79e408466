"""gRPC health that tells the truth: SERVING only while the store answers."""

from __future__ import annotations

import asyncio
import logging

from grpc_health.v1 import health, health_pb2

from .store import JobStore

log = logging.getLogger(__name__)

SERVICE_NAME = "octavia.v1.JobService"


class HealthMonitor:
    def __init__(self, store: JobStore, interval: float = 2.0) -> None:
        self.servicer = health.aio.HealthServicer()
        self._store = store
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self.serving = False

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="octavia-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._set(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.servicer.enter_graceful_shutdown()

    async def check(self) -> bool:
        serving = await self._store.ping()
        if serving != self.serving:
            log.log(logging.INFO if serving else logging.ERROR,
                    "store %s", "reachable: serving" if serving else "unreachable: not serving")
        self.serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._set(status)
        return serving

    async def _set(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        await self.servicer.set("", status)
        await self.servicer.set(SERVICE_NAME, status)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()
