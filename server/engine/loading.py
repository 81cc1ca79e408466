"""Building the engine a configuration names."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..settings import Settings
from . import Engine


def load_engine(settings: Settings) -> Engine:
    """Build the engine named by `settings.engine` (`module:factory`, called with settings)."""
    module_name, _, attribute = settings.engine.partition(":")
    factory: Callable[[Settings], Engine] = getattr(
        importlib.import_module(module_name), attribute
    )
    return factory(settings)
