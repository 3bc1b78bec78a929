"""Smoke test of the billing benchmark with tiny sizes, on SQLite and, when TEST_POSTGRES_URL is
set, on PostgreSQL in a scratch schema that is dropped afterwards."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from benchmarks import billing
from tests.conftest import need_service


def test_billing_growth_figures(monkeypatch) -> None:
    monkeypatch.setattr(billing, "SMALL_REPEATS", 1)
    figs, raw = billing.bench_billing_growth((60, 120))
    assert [f.name for f in figs] == ["bill 60 sessions", "bill 120 sessions", "growth exponent"]
    assert set(raw["runs"]) == {"60", "120"}
    assert raw["exponent"] is not None


def _bench_schemas(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return set(c.execute(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench%'")).scalars())
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_billing_growth_on_postgres_too(monkeypatch) -> None:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        need_service("TEST_POSTGRES_URL is not set: the PostgreSQL billing figures need a server")
    monkeypatch.setattr(billing, "SMALL_REPEATS", 1)
    before = _bench_schemas(url)
    figs, raw = billing.bench_billing_growth((60, 120), postgres_url=url)
    assert [f.name for f in figs] == [
        "bill 60 sessions (SQLite)", "bill 120 sessions (SQLite)", "growth exponent (SQLite)",
        "bill 60 sessions (PostgreSQL)", "bill 120 sessions (PostgreSQL)", "growth exponent (PostgreSQL)",
    ]
    assert set(raw["by_database"]) == {"sqlite", "postgresql"}
    assert set(raw["by_database"]["postgresql"]["runs"]) == {"60", "120"}
    assert _bench_schemas(url) == before  # the scratch schemas are gone
