"""The real dubbing engine: faster-whisper → MarianMT/NLLB → Coqui TTS → PyAV.

Importing this package is cheap: the ML libraries load on a job's first use of them.
`server.pipeline.media.probe` checks uploads without touching the ML stack at all.
"""

from __future__ import annotations

from .engine import DubbingEngine
from .options import PipelineOptions

__all__ = ["DubbingEngine", "PipelineOptions"]
