"""Benchmark: bill ``n`` synthetic closed sessions in one run and print the time.

    python -m server.billing.bench 100000 [DATABASE_URL]

Without a URL the run uses a SQLite file in a temporary folder; with a PostgreSQL URL it uses
a new schema of that database, dropped afterwards.

A figure to watch, never a timed assert (``make bench`` calls :func:`bench_billing`)."""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
import urllib.parse
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import func, insert, select, text

ARTISANS = 200
MACHINES = 20
PERIOD = "2026-03"
T0 = dt.datetime(2026, 3, 1, 7, 0, tzinfo=dt.UTC)
# A small run of the month before is billed first, untimed, on the same engine: the measured
# run is that of a server that has billed before (SQL compiled and cached, the site's
# local-clock texts built), not the first request after a start.
WARMUP_PERIOD = "2026-02"
WARMUP_T0 = dt.datetime(2026, 2, 10, 7, 0, tzinfo=dt.UTC)
WARMUP_SESSIONS = 200
SESSION_SPACING_S = 25  # sessions spread over March
SESSION_MINUTES = (7, 23, 45, 61, 95, 130)


def _seed(url: str, n_sessions: int) -> None:
    from server.db import make_engine, make_sessionmaker, upgrade
    from server.models import Artisan, Machine, MachineType, Session, Site

    from . import service

    upgrade(url)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            db.add(Site(code="BEN", name="Bench", tz="Africa/Dakar", currency="XOF", locale="fr"))
            db.add(MachineType(code="bandsaw", name_fr="Scie", name_en="Saw", idle_timeout_s=600))
            db.flush()
            db.add_all(
                Machine(id=f"m-{i}", site="BEN", type="bandsaw", name=f"M{i}", locked=False)
                for i in range(MACHINES)
            )
            db.add_all(
                Artisan(site="BEN", name=f"A{i}", member=i % 3 != 0,
                        cooperative=f"Coop {i % 7}" if i % 5 == 0 else None)
                for i in range(ARTISANS)
            )
            db.commit()
            ids = db.scalars(select(Artisan.id).order_by(Artisan.id)).all()
            service.create_rate_card(
                db, "BEN", machine_type="bandsaw", price_per_hour_member=2000,
                price_per_hour_non_member=3000, minimum_minutes=15,
                effective_from=dt.date(2026, 1, 1),
            )
            t0 = int(T0.timestamp()) * 1000
            rows = []
            for k in range(n_sessions):
                start = t0 + (k * SESSION_SPACING_S * 1000) % (30 * 86_400_000)
                dur = SESSION_MINUTES[k % len(SESSION_MINUTES)] * 60_000 + k % 59 * 1000
                rows.append(dict(
                    id=f"b-{k:07d}", site="BEN", machine=f"m-{k % MACHINES}",
                    artisan=ids[k % len(ids)], badge_uid=None, start_ms=start, end_ms=start + dur,
                    end_reason="tap_out", run_ms=dur * 2 // 3, last_ms=start + dur, open=False,
                ))
                if len(rows) == 10_000:
                    db.execute(insert(Session), rows)
                    rows = []
            if rows:
                db.execute(insert(Session), rows)
            w0 = int(WARMUP_T0.timestamp()) * 1000
            db.execute(insert(Session), [
                dict(id=f"w-{k:05d}", site="BEN", machine=f"m-{k % MACHINES}", artisan=ids[k % len(ids)],
                     badge_uid=None, start_ms=w0 + k * 600_000, end_ms=w0 + k * 600_000 + 1_800_000,
                     end_reason="tap_out", run_ms=1_200_000, last_ms=w0 + k * 600_000 + 1_800_000,
                     open=False)
                for k in range(WARMUP_SESSIONS)
            ])
            db.commit()
    finally:
        engine.dispose()


@contextmanager
def scratch_database(database_url: str | None) -> Iterator[str]:
    """The database of one run: without a URL a SQLite file in a temporary folder, removed
    afterwards; a SQLite URL as it is (an empty database is the caller's business); on
    PostgreSQL a new schema of the given database, dropped afterwards (nothing else of that
    database is touched)."""
    if database_url is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    if database_url.startswith("sqlite"):
        yield database_url
        return
    from sqlalchemy import create_engine

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(database_url)
    try:
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield _with_search_path(database_url, schema)
        finally:
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def _with_search_path(url: str, schema: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    query.append(("options", f"-csearch_path={schema}"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def bill_synthetic(n_sessions: int, database_url: str | None = None) -> tuple[float, int, int]:
    """Seed ``n_sessions`` closed sessions in a scratch database (see
    :func:`scratch_database`), bill the warm-up month untimed, then bill them; returns
    (seconds, invoices, lines) of the timed run."""
    from server.db import make_engine, make_sessionmaker

    from . import service
    from .models import Invoice, InvoiceLine

    with scratch_database(database_url) as url:
        _seed(url, n_sessions)
        engine = make_engine(url)
        try:
            with make_sessionmaker(engine)() as db:
                service.run_billing(
                    db, "BEN", WARMUP_PERIOD, dt.datetime(2026, 3, 1, tzinfo=dt.UTC), tax_bp=1800
                )
                if engine.dialect.name == "postgresql":
                    # the statistics autovacuum keeps on a running database; without them the
                    # planner takes the fresh tables for empty and may scan the lines per session
                    db.execute(text("ANALYZE sessions"))
                    db.execute(text("ANALYZE invoice_lines"))
                    db.commit()
                start = time.perf_counter()
                docs = service.run_billing(
                    db, "BEN", PERIOD, dt.datetime(2026, 4, 1, tzinfo=dt.UTC), tax_bp=1800
                )
                seconds = time.perf_counter() - start
                lines = db.scalar(
                    select(func.count()).select_from(InvoiceLine).join(Invoice)
                    .where(Invoice.period == PERIOD)
                )
        finally:
            engine.dispose()
    return seconds, len(docs), lines


def bench_billing(n_sessions: int = 100_000, database_url: str | None = None) -> float:
    """Seconds to bill ``n_sessions`` sessions in one billing run (seeding not counted)."""
    seconds, invoices, lines = bill_synthetic(n_sessions, database_url)
    print(
        f"billing: {lines} sessions -> {invoices} invoices in {seconds:.2f} s "
        f"({lines / seconds if seconds else 0:.0f} sessions/s)"
    )
    return seconds


if __name__ == "__main__":  # pragma: no cover
    bench_billing(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
                  sys.argv[2] if len(sys.argv) > 2 else None)
