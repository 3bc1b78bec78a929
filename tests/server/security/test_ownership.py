"""Artisans see only their own usage, sessions, balance, statement and invoices; technicians
cannot touch rates or invoices; gateway keys only ingest. Refusals change nothing and are
written to the audit log."""

from __future__ import annotations

from sqlalchemy import func, select

from server.models import Badge, Machine
from server.security.models import AuditEntry


def _denials(db) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "access.denied"))


def test_sessions_own_filter_allowed_other_refused(sec, db_session):
    awa = sec.headers["awa"]
    r = sec.client.get("/api/v1/sessions", params={"artisan": sec.own}, headers=awa)
    assert r.status_code == 200 and r.json() and {s["artisan"] for s in r.json()} == {sec.own}
    before = _denials(db_session)
    r = sec.client.get("/api/v1/sessions", params={"artisan": sec.other}, headers=awa)
    assert r.status_code == 403 and r.json()["code"] == "security.error.not_own"
    assert _denials(db_session) == before + 1
    last = db_session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert last.actor == "awa" and last.role == "artisan" and last.entity_id == "GET /api/v1/sessions"


def test_sessions_without_filter_are_their_own(sec):
    r = sec.client.get("/api/v1/sessions", headers=sec.headers["awa"])
    assert r.status_code == 200 and {s["artisan"] for s in r.json()} == {sec.own}
    everyone = sec.client.get("/api/v1/sessions", headers=sec.headers["mgr"]).json()
    assert {s["artisan"] for s in everyone} == {sec.own, sec.other}


def test_repeated_filter_cannot_smuggle_another_id(sec):
    r = sec.client.get(f"/api/v1/sessions?artisan={sec.own}&artisan={sec.other}", headers=sec.headers["awa"])
    assert r.status_code == 403


def test_invoices_only_theirs(sec):
    r = sec.client.get("/api/v1/invoices", headers=sec.headers["awa"])
    assert r.status_code == 200
    assert [d["number"] for d in r.json()] == [sec.invoices[sec.own]]
    assert sec.client.get(f"/api/v1/invoices/{sec.invoices[sec.own]}", headers=sec.headers["awa"]).status_code == 200
    assert sec.client.get(f"/api/v1/invoices/{sec.invoices[sec.other]}", headers=sec.headers["awa"]).status_code == 403
    r = sec.client.get(f"/api/v1/invoices/{sec.invoices[sec.other]}.pdf", headers=sec.headers["awa"])
    assert r.status_code == 403
    assert sec.client.get("/api/v1/invoices", params={"artisan": sec.other}, headers=sec.headers["awa"]).status_code == 403


def test_balance_and_statement_of_another_artisan_refused(sec):
    awa = sec.headers["awa"]
    assert sec.client.get(f"/api/v1/artisans/{sec.own}/balance", headers=awa).status_code == 200
    assert sec.client.get(f"/api/v1/artisans/{sec.own}/statement", headers=awa).status_code == 200
    assert sec.client.get(f"/api/v1/artisans/{sec.other}/balance", headers=awa).status_code == 403
    assert sec.client.get(f"/api/v1/artisans/{sec.other}/statement", headers=awa).status_code == 403
    assert sec.client.get(f"/api/v1/artisans/{sec.other}", headers=awa).status_code == 403


def test_artisan_cannot_write_anything(sec, db_session):
    awa = sec.headers["awa"]
    assert sec.client.patch("/api/v1/machines/bandsaw-1", json={"locked": True}, headers=awa).status_code == 403
    assert sec.client.patch(f"/api/v1/badges/{'04D4E5F6'}", json={"status": "revoked"}, headers=awa).status_code == 403
    assert sec.client.post("/api/v1/payments", headers=awa, json={
        "artisan": sec.own, "amount": 500, "currency": "XOF", "method": "cash"}).status_code == 403
    db_session.expire_all()
    assert db_session.get(Machine, "bandsaw-1").locked is False
    assert db_session.get(Badge, "04D4E5F6").status == "active"
    assert sec.client.get("/api/v1/payments", headers=sec.headers["mgr"]).json() == []


def test_technician_reads_machines_but_not_money(sec, db_session):
    tech = sec.headers["tech"]
    assert sec.client.get("/api/v1/machines", headers=tech).status_code == 200
    assert sec.client.get("/api/v1/sessions", headers=tech).status_code == 200
    assert sec.client.get("/api/v1/rate-cards", headers=tech).status_code == 403
    assert sec.client.get("/api/v1/invoices", headers=tech).status_code == 403
    r = sec.client.post("/api/v1/rate-cards", headers=tech, json={
        "site": "DKR", "machine_type": "lathe", "price_per_hour_member": 1,
        "price_per_hour_non_member": 1, "effective_from": "2026-01-01"})
    assert r.status_code == 403
    r = sec.client.post(f"/api/v1/invoices/{sec.invoices[sec.own]}/credit-note", headers=tech, json={"reason": "x"})
    assert r.status_code == 403
    assert sec.client.get(f"/api/v1/invoices/{sec.invoices[sec.own]}", headers=sec.admin).json()["status"] == "issued"
    cards = sec.client.get("/api/v1/rate-cards", headers=sec.headers["mgr"]).json()
    assert [c["machine_type"] for c in cards] == ["bandsaw"]


def test_technician_locks_through_maintenance(sec, db_session):
    r = sec.client.post("/api/v1/machines/lathe-1/lock", json={"reason": "courroie"}, headers=sec.headers["tech"])
    assert r.status_code == 200 and r.json()["locked"] is True
    r = sec.client.post("/api/v1/machines/lathe-1/unlock", headers=sec.headers["tech"])
    assert r.status_code == 200 and r.json()["locked"] is False


def test_gateway_key_on_a_manager_endpoint_is_refused(sec, db_session):
    gw = sec.headers["gateway"]
    r = sec.client.post("/api/v1/sites", json={"code": "EVIL", "name": "x"}, headers=gw)
    assert r.status_code == 403
    assert sec.client.get("/api/v1/sites", headers=gw).status_code == 403
    assert "EVIL" not in {s["code"] for s in sec.client.get("/api/v1/sites", headers=sec.admin).json()}
    last = db_session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert last.actor == "gateway:gw-dkr" and last.action == "access.denied"


def test_a_bad_gateway_key_is_401(sec):
    assert sec.client.get("/api/v1/sites", headers={"X-API-Key": "nope"}).status_code == 401
    assert sec.client.get("/api/v1/gateway/snapshot", headers={"X-API-Key": "nope"}).status_code == 401
