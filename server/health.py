"""gRPC health that tells the truth.

Two services, as Kubernetes-style probes want them:
- `""` (liveness): SERVING from start until shutdown begins; restart the process if not.
- `octavia.v1.JobService` (readiness): SERVING only while the store answers *and* the
  engine side accepts work (the runner's workers are alive); route traffic elsewhere if not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from grpc_health.v1 import health, health_pb2

from .store import JobStore

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger(__name__)

SERVICE_NAME = "octavia.v1.JobService"
LIVENESS = ""


class HealthMonitor:
    def __init__(
        self,
        store: JobStore,
        interval: float = 2.0,
        *,
        accepting: Callable[[], bool] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.servicer = health.aio.HealthServicer()
        self._store = store
        self._accepting = accepting
        self._metrics = metrics
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self.serving = False

    async def start(self) -> None:
        await self.servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="octavia-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._set(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.servicer.set(LIVENESS, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.servicer.enter_graceful_shutdown()

    async def check(self) -> bool:
        try:
            # A database that hangs (packets dropped, a lock held) is as unready as one
            # that refuses: waiting on it would freeze the status at its last value.
            reachable = await asyncio.wait_for(self._store.ping(), timeout=self._interval)
        except TimeoutError:
            reachable = False
        accepting = self._accepting() if self._accepting is not None else True
        serving = reachable and accepting
        if serving != self.serving:
            why = ("store reachable, engine accepting work: ready" if serving
                   else "store unreachable: not ready" if not reachable
                   else "engine not accepting work: not ready")
            log.log(logging.INFO if serving else logging.ERROR, "%s", why)
        self.serving = serving
        if self._metrics is not None:
            self._metrics.ready.set(1 if serving else 0)
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._set(status)
        return serving

    async def _set(self, status: int) -> None:
        await self.servicer.set(SERVICE_NAME, status)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()
