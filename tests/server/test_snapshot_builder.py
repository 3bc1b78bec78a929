"""Snapshot building: content, version as a content hash, contributors from other parts."""

from __future__ import annotations

import datetime as dt

import pytest

from crp_common.snapshot import SnapCondition
from server import snapshot_builder
from server.models import Artisan, Badge, Machine, MachineType, Qualification, Site
from server.snapshot_builder import build_snapshot, content_version, on_snapshot_machines


@pytest.fixture
def site_db(db_session):
    db = db_session
    db.add_all([Site(code="DKR", name="CRP Dakar", tz="Africa/Dakar"), MachineType(code="lathe", name_fr="Tour", name_en="Lathe", idle_timeout_s=900)])
    db.flush()
    db.add(Machine(id="lathe-1", site="DKR", type="lathe", name="Tour 1", node_id="node-lt1", locked=False))
    a = Artisan(site="DKR", name="Awa", member=False, status="active", credit_blocked=True)
    db.add(a)
    db.flush()
    db.add_all([Badge(uid="04A1B2C3", artisan=a.id, status="active"), Qualification(artisan=a.id, machine_type="lathe", expires_on=dt.date(2027, 1, 31))])
    db.commit()
    return db


def test_content_and_version(site_db):
    snap = build_snapshot(site_db, "DKR", now_ms=1)
    assert snap.generated_at == 1
    assert [(m.id, m.node, m.idle_timeout_s) for m in snap.machines] == [("lathe-1", "node-lt1", 900)]
    (a,) = snap.artisans
    assert (a.name, a.member, a.credit_blocked) == ("Awa", False, True)
    assert [(q.type, q.expires) for q in a.qualifications] == [("lathe", dt.date(2027, 1, 31))]
    later = build_snapshot(site_db, "DKR", now_ms=2)
    assert later.version == snap.version
    site_db.get(Machine, "lathe-1").locked = True
    site_db.commit()
    assert build_snapshot(site_db, "DKR", now_ms=3).version != snap.version


def test_unknown_site():
    with pytest.raises(LookupError):
        build_snapshot(_NoDb(), "ZZZ", 0)


class _NoDb:
    def get(self, *_):
        return None


def test_content_version_is_order_stable():
    assert content_version({"a": 1, "b": [1, 2]}) == content_version({"b": [1, 2], "a": 1})
    assert content_version({"a": 1}) != content_version({"a": 2})


def test_contributors_add_machine_fields(site_db, monkeypatch):
    monkeypatch.setattr(snapshot_builder, "_CONTRIBUTORS", [])
    before = build_snapshot(site_db, "DKR", 0)

    @on_snapshot_machines
    def conditions(db, site):
        assert site == "DKR"
        return {"lathe-1": {"conditions": [SnapCondition(id="plan-7", metric="temp", above=80, for_s=120, critical=True)]}}

    snap = build_snapshot(site_db, "DKR", 0)
    assert [c.id for c in snap.machines[0].conditions] == ["plan-7"]
    assert snap.version != before.version
