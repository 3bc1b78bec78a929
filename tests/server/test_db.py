"""Migrations from an empty database, and the models they must match."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from server.db import current_revision, make_engine, upgrade
from server.models import Base

CORE_TABLES = {
    "sites", "machine_types", "machines", "artisans", "badges", "qualifications", "gateways",
    "events", "sessions", "machine_state_changes", "dead_letters",
}


def test_upgrade_from_empty_to_head_and_again(database_url):
    assert current_revision(database_url) is None
    upgrade(database_url, "0001")
    assert current_revision(database_url) == "0001"
    upgrade(database_url)  # head, whatever other parts have added
    upgrade(database_url)  # idempotent
    engine = make_engine(database_url)
    try:
        assert CORE_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_at_head_match_the_core_models(database_url):
    upgrade(database_url, "head")
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = [d for d in compare_metadata(ctx, Base.metadata) if _touches_core(d)]
    finally:
        engine.dispose()
    assert diffs == []


def _touches_core(diff) -> bool:
    """Only differences on the tables revision 0001 owns (other parts add their own)."""
    items = diff if isinstance(diff, list) else [diff]
    for item in items:
        for part in item[1:]:
            table = getattr(part, "table", None)
            name = getattr(part, "name", None)
            if getattr(table, "name", None) in CORE_TABLES or (hasattr(part, "columns") and name in CORE_TABLES):
                return True
            if isinstance(part, str) and part in CORE_TABLES:
                return True
    return False


def test_sqlite_pragmas(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()
