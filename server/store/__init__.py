"""Durable job state: the `jobs` table and the per-job event log, behind `JobStore`."""

from .models import JobEvent, JobRecord
from .store import JobStore, snapshot_of

__all__ = ["JobEvent", "JobRecord", "JobStore", "snapshot_of"]
