"""Keeps the store-wide gauges (`octavia_jobs{phase}`) fresh while metrics are served.

Counted in the store, not in memory, so every replica reports the whole deployment (use
`max` across replicas, not `sum`). One grouped count every few seconds is cheap.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func
from sqlmodel import Session, col, select

from .jobs import Status
from .metrics import Metrics
from .store import JobRecord, JobStore

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0


async def refresh(store: JobStore, metrics: Metrics) -> None:
    """Count unfinished jobs by phase once."""
    metrics.set_phase_counts(await asyncio.to_thread(_phase_counts, store))


async def refresh_forever(store: JobStore, metrics: Metrics,
                          interval: float = REFRESH_SECONDS) -> None:
    while True:
        try:
            await refresh(store, metrics)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store is down: health says so; keep the last numbers
            log.debug("could not count jobs by phase", exc_info=True)
        await asyncio.sleep(interval)


def _phase_counts(store: JobStore) -> dict[str, int]:
    with Session(store.engine) as session:
        query = (
            select(JobRecord.phase, func.count())
            .where(col(JobRecord.status).in_([Status.PENDING.value, Status.PROCESSING.value]))
            .group_by(JobRecord.phase)
        )
        return {str(phase): int(count) for phase, count in session.exec(query)}
