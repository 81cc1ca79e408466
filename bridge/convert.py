"""Form and query values the bridge accepts → protobuf enums. The other way, the job
object every endpoint answers with, is `octavia.jobjson` (webhooks send it too)."""

from __future__ import annotations

from octavia.v1 import jobs_pb2 as pb

PAUSE_PHASES = {
    "transcribing": pb.JOB_PHASE_TRANSCRIBING,
    "translating": pb.JOB_PHASE_TRANSLATING,
}
"""The phases a job may pause after for review (`pause_after`)."""

MIX_MODES = {
    "ducked": pb.MIX_MODE_DUCKED,
    "dub_only": pb.MIX_MODE_DUB_ONLY,
    "separated": pb.MIX_MODE_SEPARATED,
}
