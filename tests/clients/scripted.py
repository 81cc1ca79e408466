"""An engine factory for `OCTAVIA_ENGINE` in CLI subprocess tests.

`load_engine` calls the factory with the Settings; `ScriptedEngine` itself is a dataclass
whose first field is `ticks`, so it cannot be named directly.
"""

from __future__ import annotations

from server.settings import Settings
from tests.support.engine import ScriptedEngine


def engine(settings: Settings) -> ScriptedEngine:
    return ScriptedEngine(ticks=3, delay=0.01)


def failing_engine(settings: Settings) -> ScriptedEngine:
    from server.jobs import Phase

    return ScriptedEngine(ticks=1, fail_in=Phase.TRANSLATING)


def slow_engine(settings: Settings) -> ScriptedEngine:
    """A job that runs for about a minute unless cancelled (for Ctrl-C tests)."""
    return ScriptedEngine(ticks=300, delay=0.05)
