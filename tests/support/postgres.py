"""A fresh PostgreSQL database per test, on the server the machine provides."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ADMIN_URL = os.environ.get("OCTAVIA_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


@functools.cache
def postgres_available() -> bool:
    """Asked once per test run: a machine without the server waits out one timeout."""
    try:
        import psycopg

        with psycopg.connect(ADMIN_URL, connect_timeout=2):
            return True
    except Exception:
        return False


needs_postgres = pytest.mark.skipif(
    not postgres_available(), reason="no PostgreSQL at OCTAVIA_TEST_POSTGRES / 127.0.0.1:5432")
"""For tests that need the machine's PostgreSQL; CI has one, so there they always run."""


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, drop it afterwards."""
    import psycopg

    name = f"octavia_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
