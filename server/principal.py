"""Who the current RPC is for, set by the auth interceptor before any handler runs."""

from __future__ import annotations

from contextvars import ContextVar

from .auth import Principal

_current: ContextVar[Principal] = ContextVar("octavia_principal")


def current_principal() -> Principal:
    return _current.get()


def set_principal(principal: Principal) -> object:
    return _current.set(principal)
