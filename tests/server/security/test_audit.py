"""The audit log: every change to money, machine locks, badges and users is recorded with its
actor; the log is append-only (ORM guard and database triggers); managers read it."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from server.security.audit import audit
from server.security.models import AppendOnlyError, AuditEntry


def _log(sec, **params):
    r = sec.client.get("/api/v1/audit", params=params, headers=sec.headers["mgr"])
    assert r.status_code == 200, r.text
    return r.json()


def test_changes_are_recorded_with_their_actor(sec):
    mgr = sec.headers["mgr"]
    # the fixture issued a rate card and two invoices as the admin token, and created users
    assert {e["actor"] for e in _log(sec, action="invoice.issued")} == {"admin-token"}
    assert len(_log(sec, action="invoice.issued")) == 2
    assert _log(sec, action="rate_card.created")[0]["details"]["machine_type"] == "bandsaw"
    assert {e["entity_id"] for e in _log(sec, action="user.created")} == {"mgr", "tech", "awa", "moussa"}

    number = sec.invoices[sec.own]
    assert sec.client.post(f"/api/v1/invoices/{number}/credit-note", headers=mgr, json={"reason": "erreur"}).status_code == 201
    assert sec.client.post("/api/v1/payments", headers=mgr, json={
        "artisan": sec.own, "amount": 500, "currency": "XOF", "method": "cash"}).status_code == 201
    assert sec.client.patch("/api/v1/machines/bandsaw-1", headers=mgr, json={"locked": True, "lock_reason": "lame"}).status_code == 200
    assert sec.client.post("/api/v1/machines/lathe-1/lock", headers=sec.headers["tech"], json={}).status_code == 200
    assert sec.client.post("/api/v1/machines/lathe-1/unlock", headers=sec.headers["tech"]).status_code == 200
    assert sec.client.patch("/api/v1/badges/04D4E5F6", headers=mgr, json={"status": "revoked"}).status_code == 200
    assert sec.client.post("/api/v1/badges", headers=mgr, json={"uid": "04AABBCC", "artisan_id": sec.other}).status_code == 201
    cards = sec.client.get("/api/v1/rate-cards", headers=mgr).json()
    assert sec.client.post(f"/api/v1/rate-cards/{cards[0]['id']}/close", headers=mgr,
                           json={"effective_to": "2026-12-31"}).status_code == 200

    credited = _log(sec, action="invoice.credited")
    assert [(e["actor"], e["role"], e["entity_id"]) for e in credited] == [("mgr", "manager", number)]
    assert credited[0]["details"]["reason"] == "erreur"
    pay = _log(sec, action="payment.recorded")[0]
    assert pay["actor"] == "mgr" and pay["details"]["amount"] == 500
    locks = _log(sec, entity="machine")
    assert [(e["action"], e["entity_id"], e["actor"]) for e in reversed(locks)] == [
        ("machine.locked", "bandsaw-1", "mgr"), ("machine.locked", "lathe-1", "tech"),
        ("machine.unlocked", "lathe-1", "tech")]
    assert [e["action"] for e in _log(sec, entity="badge")] == ["badge.issued", "badge.revoked",
                                                                "badge.issued", "badge.issued", "badge.issued"]
    assert _log(sec, action="rate_card.closed")[0]["details"]["effective_to"] == "2026-12-31"


def test_a_refused_change_leaves_no_audit_entry_but_a_denial(sec):
    before = len(_log(sec, limit=5000))
    r = sec.client.post("/api/v1/payments", headers=sec.headers["mgr"], json={
        "artisan": sec.own, "amount": 500, "currency": "EUR", "method": "cash"})
    assert r.status_code == 422
    assert len(_log(sec, limit=5000)) == before
    assert not _log(sec, action="payment.recorded")


def test_only_managers_read_the_log(sec):
    for who in ("tech", "awa", "gateway"):
        assert sec.client.get("/api/v1/audit", headers=sec.headers[who]).status_code == 403
    assert sec.client.get("/api/v1/audit").status_code == 401


def test_orm_refuses_update_and_delete(db_session):
    e = audit(db_session, "tester", "test.action", "thing", 1, {"a": 1})
    db_session.commit()
    e.action = "changed"
    with pytest.raises(AppendOnlyError):
        db_session.commit()
    db_session.rollback()
    db_session.delete(e)
    with pytest.raises(AppendOnlyError):
        db_session.commit()
    db_session.rollback()
    assert db_session.scalar(select(AuditEntry.action).where(AuditEntry.id == e.id)) == "test.action"


def test_database_refuses_update_and_delete(db_session):
    audit(db_session, "tester", "test.action", "thing", 1)
    db_session.commit()
    for sql in ("UPDATE audit_log SET action = 'changed'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            db_session.execute(text(sql))
        db_session.rollback()
    assert db_session.scalars(select(AuditEntry.action)).all() == ["test.action"]
