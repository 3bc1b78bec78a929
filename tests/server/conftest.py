"""Server fixtures: a migrated database, the app with its TestClient, a registered workshop,
and :class:`GatewayEvents`, which builds events the way a gateway forwards them."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crp_common.events import IngestBatch
from server.app import create_app
from server.db import make_engine, make_sessionmaker
from server.settings import ServerSettings

ADMIN_TOKEN = "test-admin-token"
T0 = int(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)  # a Monday
MIN = 60_000


@pytest.fixture
def migrated_url(database_url: str, migrated_sqlite) -> str:
    """``database_url`` at the migrations' head (on SQLite a copy of the session's migrated file)."""
    migrated_sqlite.migrate(database_url)
    return database_url


@pytest.fixture
def db_session(migrated_url: str):
    engine = make_engine(migrated_url)
    db = make_sessionmaker(engine)()
    yield db
    db.close()
    engine.dispose()


@pytest.fixture
def server_settings(migrated_url: str) -> ServerSettings:
    return ServerSettings(
        database_url=migrated_url, demo_mode=False, secret_key="test-secret", admin_token=ADMIN_TOKEN, _env_file=None,
        background_jobs=False,  # tests drive evaluation themselves, on their own clock
    )


@pytest.fixture
def api(server_settings: ServerSettings):
    """A TestClient with the admin bearer token set."""
    with TestClient(create_app(server_settings), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as c:
        yield c


@dataclass
class Workshop:
    site: str
    gateway: str
    api_key: str
    artisans: dict[str, int]
    badges: dict[str, str]


def register_workshop(api: TestClient) -> Workshop:
    """Site DKR with two machine types, three machines, three artisans with badges."""

    def ok(r):
        assert r.status_code in (200, 201), r.text
        return r.json()

    ok(api.post("/api/v1/sites", json={"code": "DKR", "name": "CRP Dakar", "tz": "Africa/Dakar"}))
    ok(api.post("/api/v1/machine-types", json={"code": "bandsaw", "name_fr": "Scie à ruban", "name_en": "Bandsaw"}))
    ok(api.post("/api/v1/machine-types", json={"code": "lathe", "name_fr": "Tour", "name_en": "Lathe", "idle_timeout_s": 900}))
    ok(api.post("/api/v1/machines", json={"id": "bandsaw-1", "site": "DKR", "type": "bandsaw", "name": "Scie 1", "node_id": "node-bs1"}))
    ok(api.post("/api/v1/machines", json={"id": "lathe-1", "site": "DKR", "type": "lathe", "name": "Tour 1", "node_id": "node-lt1"}))
    ok(api.post("/api/v1/machines", json={"id": "lathe-2", "site": "DKR", "type": "lathe", "name": "Tour 2"}))
    artisans, badges = {}, {}
    for name, uid, types in (
        ("Awa Diop", "04A1B2C3", ["bandsaw", "lathe"]),
        ("Moussa Ndiaye", "04D4E5F6", ["bandsaw"]),
        ("Fatou Sow", "04112233445566", []),
    ):
        a = ok(api.post("/api/v1/artisans", json={"site": "DKR", "name": name, "trade": "menuiserie"}))
        artisans[name] = a["id"]
        badges[name] = ok(api.post("/api/v1/badges", json={"uid": uid, "artisan_id": a["id"]}))["uid"]
        for t in types:
            ok(api.post("/api/v1/qualifications", json={"artisan_id": a["id"], "machine_type": t}))
    gw = ok(api.post("/api/v1/gateways", json={"id": "gw-dkr", "site": "DKR"}))
    return Workshop("DKR", gw["id"], gw["api_key"], artisans, badges)


@pytest.fixture
def workshop(api: TestClient) -> Workshop:
    return register_workshop(api)


class GatewayEvents:
    """Builds events as the gateway forwards them: node messages (source = node id, kind =
    contract Kind, body = message minus header) and the gateway's own facts (source = gateway
    id). Every event gets a fresh (source, boot, seq)."""

    def __init__(self, site: str = "DKR", gateway: str = "gw-dkr", gw_boot: int = 1):
        self.site = site
        self.gateway = gateway
        self.gw_boot = gw_boot
        self._seq: dict[tuple[str, int], itertools.count] = {}
        self.events: list[dict[str, Any]] = []

    def _next(self, source: str, boot: int) -> int:
        return next(self._seq.setdefault((source, boot), itertools.count(1)))

    def node(self, machine: str, node: str, boot: int, kind: str, t: int, seq: int | None = None, **body: Any) -> dict:
        e = {
            "source": node,
            "boot": boot,
            "seq": self._next(node, boot) if seq is None else seq,
            "kind": kind,
            "site": self.site,
            "machine": machine,
            "t": t,
            "body": body,
        }
        self.events.append(e)
        return e

    def gw(self, machine: str | None, kind: str, t: int, /, **body: Any) -> dict:
        e = {
            "source": self.gateway,
            "boot": self.gw_boot,
            "seq": self._next(self.gateway, self.gw_boot),
            "kind": kind,
            "site": self.site,
            "machine": machine,
            "t": t,
            "body": body,
        }
        self.events.append(e)
        return e

    # ---- the usual sequences

    def tap_in(self, machine: str, node: str, boot: int, uid: str, artisan: int, t: int, delay: int = 50) -> str:
        """A badge read at ``t``, then ``delay`` ms later the grant decision and the session
        opening (id = the badge request's key)."""
        b = self.node(machine, node, boot, "badge", t, uid=uid)
        req = {"node": node, "boot": boot, "seq": b["seq"]}
        sid = f"{node}:{boot}:{b['seq']}"
        self.gw(machine, "decision", t + delay, uid=uid, artisan=artisan, result="grant", reason=None, req=req)
        self.gw(machine, "session_open", t + delay, session=sid, artisan=artisan, uid=uid, req=req)
        self.gw(machine, "state", t + delay, state="in_use", cause="session_open")
        return sid

    def deny(self, machine: str, node: str, boot: int, uid: str, artisan: int | None, reason: str, t: int) -> None:
        b = self.node(machine, node, boot, "badge", t, uid=uid)
        req = {"node": node, "boot": boot, "seq": b["seq"]}
        self.gw(machine, "decision", t + 50, uid=uid, artisan=artisan, result="deny", reason=reason, req=req)

    def close(self, machine: str, sid: str, reason: str, t: int) -> None:
        self.gw(machine, "session_close", t, session=sid, reason=reason)
        self.gw(machine, "state", t, state="available", cause=reason)

    def batch(self, events: list[dict] | None = None, sent_at: int | None = None) -> dict:
        evs = self.events if events is None else events
        return {
            "gateway": self.gateway,
            "site": self.site,
            "sent_at": sent_at if sent_at is not None else max((e["t"] for e in evs), default=T0),
            "events": evs,
        }

    def ingest_batch(self, events: list[dict] | None = None) -> IngestBatch:
        return IngestBatch.model_validate(self.batch(events))


@pytest.fixture
def events() -> GatewayEvents:
    return GatewayEvents()


@pytest.fixture
def make_events() -> type[GatewayEvents]:
    """The GatewayEvents class, for tests that need several sources or sites (test modules
    must not import conftest: several conftest.py files share that module name)."""
    return GatewayEvents
