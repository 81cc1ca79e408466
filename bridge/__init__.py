"""The browser bridge: HTTP, JSON and server-sent events in front of the gRPC service.

`create_app(settings)` builds the Starlette app; `run.run_bridge` serves it with uvicorn.
"""

from .app import create_app

__all__ = ["create_app"]
