"""Billing fixtures: a migrated database (SQLite, and PostgreSQL when TEST_POSTGRES_URL is set)
with one site, machines, artisans and helpers to add closed sessions."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from server.db import make_engine, make_sessionmaker, upgrade
from server.models import Artisan, Machine, MachineType, Session, Site

UTC = dt.UTC
MIN_MS = 60_000


def ms(*args: int) -> int:
    return (dt.datetime(*args, tzinfo=UTC) - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(
        milliseconds=1
    )


class World:
    """The test workshop: site DKR (Dakar, UTC+0, XOF)."""

    def __init__(self, url: str, sm):
        self.url = url
        self.sm = sm
        self.db = sm()
        self._ids = itertools.count(1)

    def artisan(self, name: str, member: bool = True, cooperative: str | None = None, site="DKR"):
        a = Artisan(site=site, name=name, member=member, cooperative=cooperative)
        self.db.add(a)
        self.db.commit()
        return a

    def session(
        self,
        artisan: int,
        start_ms: int,
        minutes: float,
        machine: str = "bandsaw-1",
        run_ms: int | None = None,
        open_: bool = False,
        site: str = "DKR",
    ) -> Session:
        end = start_ms + int(minutes * MIN_MS)
        s = Session(
            id=f"s-{next(self._ids):05d}",
            site=site,
            machine=machine,
            artisan=artisan,
            start_ms=start_ms,
            end_ms=None if open_ else end,
            end_reason=None if open_ else "tap_out",
            run_ms=end - start_ms if run_ms is None else run_ms,
            last_ms=end,
            open=open_,
        )
        self.db.add(s)
        self.db.commit()
        return s


def seed(db) -> None:
    db.add_all(
        [
            Site(code="DKR", name="CRP Dakar", tz="Africa/Dakar", currency="XOF", locale="fr"),
            Site(code="DLA", name="CRP Douala", tz="Africa/Douala", currency="XAF", locale="fr"),
            MachineType(code="bandsaw", name_fr="Scie à ruban", name_en="Bandsaw", idle_timeout_s=600),
            MachineType(code="lathe", name_fr="Tour", name_en="Lathe", idle_timeout_s=600),
        ]
    )
    db.flush()
    db.add_all(
        [
            Machine(id="bandsaw-1", site="DKR", type="bandsaw", name="Scie 1", locked=False),
            Machine(id="bandsaw-2", site="DKR", type="bandsaw", name="Scie 2", locked=False),
            Machine(id="lathe-1", site="DKR", type="lathe", name="Tour 1", locked=False),
            Machine(id="lathe-dla", site="DLA", type="lathe", name="Tour Douala", locked=False),
        ]
    )
    db.commit()


@pytest.fixture
def world(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    sm = make_sessionmaker(engine)
    with sm() as db:
        seed(db)
    w = World(database_url, sm)
    yield w
    w.db.close()
    engine.dispose()


@pytest.fixture
def brief_card(world):
    """The product brief's card on every bandsaw: 2,000 XOF/h member, 3,000 non-member,
    15-minute increments rounded up, 15-minute minimum, from 1 January 2026."""
    from server.billing.service import create_rate_card

    return create_rate_card(
        world.db,
        "DKR",
        machine_type="bandsaw",
        price_per_hour_member=2000,
        price_per_hour_non_member=3000,
        increment_minutes=15,
        rounding="up",
        minimum_minutes=15,
        effective_from=dt.date(2026, 1, 1),
    )
