"""A simulated workshop day in a real PostgreSQL and a real influxd, put there by the server's
own code: gateway-shaped events through ``server.ingest.ingest_batch`` (sessions, states),
maintenance evaluation (plan counters, alerts), a billing run (invoices), and the telemetry
writer (InfluxDB points, plus the availability points of :mod:`server.availability`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_POSTGRES_URL, need_service

REPO = Path(__file__).resolve().parents[3]
DASHBOARDS = REPO / "dashboards"
DAY = dt.date(2026, 3, 2)  # a Monday; Dakar is UTC+0
T_FROM = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)
T_TO = dt.datetime(2026, 3, 3, tzinfo=dt.timezone.utc)
WRITER_FLUSH_TIMEOUT_S = 60.0


def at(hh: int, mm: int = 0) -> int:
    return int(dt.datetime.combine(DAY, dt.time(hh, mm), dt.timezone.utc).timestamp() * 1000)


class DayEvents:
    """Events as the gateway forwards them (node messages and the gateway's own facts)."""

    def __init__(self, site: str = "DKR", gateway: str = "gw-dkr"):
        self.site, self.gateway = site, gateway
        self.events: list[dict[str, Any]] = []
        self._seq: dict[str, itertools.count] = {}

    def _ev(self, source: str, kind: str, machine: str, t: int, body: dict[str, Any]) -> dict[str, Any]:
        e = {"source": source, "boot": 1, "seq": next(self._seq.setdefault(source, itertools.count(1))),
             "kind": kind, "site": self.site, "machine": machine, "t": t, "body": body}
        self.events.append(e)
        return e

    def node(self, machine: str, node: str, kind: str, t: int, **body: Any) -> dict[str, Any]:
        return self._ev(node, kind, machine, t, body)

    def gw(self, machine: str, kind: str, t: int, **body: Any) -> dict[str, Any]:
        return self._ev(self.gateway, kind, machine, t, body)

    def session(self, machine: str, node: str, uid: str, artisan: int, start: int, motor_on: int, motor_off: int,
                end: int) -> None:
        b = self.node(machine, node, "badge", start, uid=uid)
        req = {"node": node, "boot": 1, "seq": b["seq"]}
        sid = f"{node}:1:{b['seq']}"
        self.gw(machine, "decision", start + 50, uid=uid, artisan=artisan, result="grant", reason=None, req=req)
        self.gw(machine, "session_open", start + 50, session=sid, artisan=artisan, uid=uid, req=req)
        self.gw(machine, "state", start + 50, state="in_use", cause="session_open")
        self.node(machine, node, "motor", motor_on, running=True, amps=4.2)
        for t in range(motor_on + 60_000, motor_off, 600_000):
            self.node(machine, node, "current", t, amps=4.1)
        self.node(machine, node, "motor", motor_off, running=False)
        self.gw(machine, "session_close", end, session=sid, reason="tap_out")
        self.gw(machine, "state", end, state="available", cause="tap_out")


@dataclass
class FilledDay:
    pg_url: str
    influx_url: str
    influx_db: str
    artisans: dict[str, int]


def _schema_url(base: str, schema: str) -> str:
    parts = urllib.parse.urlsplit(base)
    q = urllib.parse.parse_qsl(parts.query) + [("options", f"-csearch_path={schema}")]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))


def _seed(db) -> dict[str, int]:
    from server.models import Artisan, Badge, Gateway, Machine, MachineType, Site

    db.add_all([Site(code="DKR", name="CRP Dakar", tz="Africa/Dakar", currency="XOF", locale="fr"),
                MachineType(code="bandsaw", name_fr="Scie à ruban", name_en="Bandsaw"),
                MachineType(code="lathe", name_fr="Tour", name_en="Lathe")])
    db.flush()
    db.add_all([Machine(id="bandsaw-1", site="DKR", type="bandsaw", name="Scie 1", node_id="node-bs1"),
                Machine(id="lathe-1", site="DKR", type="lathe", name="Tour 1", node_id="node-lt1"),
                Machine(id="lathe-2", site="DKR", type="lathe", name="Tour 2", node_id="node-lt2"),
                Gateway(id="gw-dkr", site="DKR", api_key_hash=hashlib.sha256(b"test-key").hexdigest())])
    ids = {}
    for name, uid, member in (("Awa Diop", "04A1B2C3", True), ("Moussa Ndiaye", "04D4E5F6", False)):
        a = Artisan(site="DKR", name=name, member=member)
        db.add(a)
        db.flush()
        db.add(Badge(uid=uid, artisan=a.id))
        ids[uid] = a.id
    db.commit()
    return ids


def _day_events(artisans: dict[str, int]) -> list[dict[str, Any]]:
    ev = DayEvents()
    awa, moussa = artisans["04A1B2C3"], artisans["04D4E5F6"]
    for m, node in (("bandsaw-1", "node-bs1"), ("lathe-1", "node-lt1"), ("lathe-2", "node-lt2")):
        ev.gw(m, "state", at(7, 25), state="available", cause="online")
        for h in range(8, 19):
            ev.node(m, node, "temp", at(h), c=30.0 + h / 2)
            ev.node(m, node, "vib", at(h, 1), rms=1.5)
    ev.session("bandsaw-1", "node-bs1", "04A1B2C3", awa, at(8), at(8, 5), at(9, 10), at(9, 15))
    # The bandsaw is metered (a plug's cumulative counter, Wh); its counter restarts at 0 after a
    # power cut between 09:20 and 10:10.
    for t, wh in ((at(7, 59), 1000.0), (at(8, 30), 1600.0), (at(9, 20), 3000.0), (at(10, 10), 0.0),
                  (at(11), 500.0)):
        ev.node("bandsaw-1", "node-bs1", "energy", t, wh=wh)
    ev.session("bandsaw-1", "node-bs1", "04D4E5F6", moussa, at(14), at(14, 5), at(15, 20), at(15, 30))
    ev.session("lathe-1", "node-lt1", "04A1B2C3", awa, at(10), at(10, 10), at(11, 30), at(11, 45))
    ev.node("lathe-1", "node-lt1", "fault", at(16), code="thermal", active=True)
    ev.gw("lathe-1", "state", at(16), state="fault", cause="thermal")
    ev.gw("lathe-2", "state", at(12), state="maintenance", cause="service")
    ev.gw("lathe-2", "state", at(17), state="available", cause="service_done")
    return ev.events


@pytest.fixture(scope="module")
def filled_day(influxd, tmp_path_factory) -> FilledDay:
    if not TEST_POSTGRES_URL:
        need_service("TEST_POSTGRES_URL is not set: the dashboards' SQL runs on PostgreSQL")
    from sqlalchemy import create_engine, select, text

    from crp_common.events import Event as EventIn
    from crp_common.events import IngestBatch
    from server.availability import availability_lines, parse_opening_hours, DEFAULT_OPENING_HOURS, site_availability
    from server.billing.service import create_rate_card, run_billing
    from server.db import make_engine, make_sessionmaker, upgrade
    from server.ingest import ingest_batch
    from server.maintenance.evaluation import on_events
    from server.maintenance.models import MaintenancePlan
    from server.models import Event
    from server.telemetry.backends import V1Backend
    from server.telemetry.spool import Spool
    from server.telemetry.writer import TelemetryWriter
    from server.timeutil import zone

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_POSTGRES_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _schema_url(TEST_POSTGRES_URL, schema)
    influx_db = influxd.create_database()
    engine = make_engine(url)
    try:
        upgrade(url)
        with make_sessionmaker(engine)() as db:
            artisans = _seed(db)
            db.add_all([
                MaintenancePlan(machine_type="lathe", kind="run_hours", interval=1.4, due_soon_share=0.1,
                                task="Graisser la broche"),
                MaintenancePlan(machine_type="bandsaw", kind="run_hours", interval=50, due_soon_share=0.1,
                                task="Changer la lame"),
            ])
            db.commit()
            events = _day_events(artisans)
            batch = IngestBatch.model_validate({"gateway": "gw-dkr", "site": "DKR", "sent_at": at(18, 30),
                                                "events": events})
            result = ingest_batch(db, "gw-dkr", batch)
            assert result.accepted == len(events) and not result.rejected, result
            on_events(db, db.scalars(select(Event)).all())
            db.commit()
            for mtype, member, non_member in (("bandsaw", 2000, 3000), ("lathe", 1500, 2500)):
                create_rate_card(db, "DKR", machine_type=mtype, price_per_hour_member=member,
                                 price_per_hour_non_member=non_member, increment_minutes=15, rounding="up",
                                 minimum_minutes=15, effective_from=dt.date(2026, 1, 1))
            docs = run_billing(db, "DKR", "2026-03", issued_at=dt.datetime(2026, 3, 31, 20, tzinfo=dt.timezone.utc))
            assert len(docs) == 2
            days = site_availability(db, "DKR", DAY, DAY, hours=parse_opening_hours(DEFAULT_OPENING_HOURS))
        types = {"bandsaw-1": "bandsaw", "lathe-1": "lathe", "lathe-2": "lathe"}
        writer = TelemetryWriter(V1Backend(influxd.url, influx_db),
                                 Spool(tmp_path_factory.mktemp("spool") / "spool.sqlite"))
        try:
            assert writer.submit([EventIn.model_validate(e) for e in events], types) > 0
            assert writer.submit_lines(availability_lines(days, {"DKR": zone("Africa/Dakar")})) == 3
            assert writer.flush(WRITER_FLUSH_TIMEOUT_S), writer.stats
        finally:
            writer.close()
        yield FilledDay(url, influxd.url, influx_db, artisans)
    finally:
        engine.dispose()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        influxd.drop_database(influx_db)
