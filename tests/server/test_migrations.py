"""The Alembic migrations build exactly the schema the models describe, on every database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from server.settings import Settings
from server.store.migrate import upgrade
from server.store.store import create_db_engine


def test_the_migrated_schema_matches_the_models(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.database_url_resolved)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                # procrastinate's own tables live beside ours on PostgreSQL.
                "include_name": lambda name, kind, _parent: not (
                    kind == "table" and (name or "").startswith("procrastinate")),
            })
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()

    assert differences == [], "write a migration for these model changes"
