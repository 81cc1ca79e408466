"""Every service test runs on both stores: embedded SQLite and PostgreSQL."""

from __future__ import annotations

from tests.support.fixtures import database_url_on_both_stores as database_url_on_both_stores
