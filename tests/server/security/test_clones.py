"""One badge active on two machines at once raises one security alert and an audit entry."""

from __future__ import annotations

from sqlalchemy import select

from server.security.clones import OPEN_END, Span, overlaps
from server.security.models import AuditEntry, SecurityAlert

T = 1_772_438_400_000  # 2026-03-02 08:00 UTC
MIN = 60_000


def test_overlap_rule():
    a = Span("s1", "bandsaw-1", "DKR", "04A1B2C3", T, T + 30 * MIN)
    assert overlaps(a, Span("s2", "lathe-1", "DKR", "04A1B2C3", T + 10 * MIN, OPEN_END))
    assert not overlaps(a, Span("s2", "lathe-1", "DKR", "04A1B2C3", T + 30 * MIN, OPEN_END))  # back to back
    assert not overlaps(a, Span("s2", "bandsaw-1", "DKR", "04A1B2C3", T + 10 * MIN, OPEN_END))  # same machine
    assert not overlaps(a, Span("s2", "lathe-1", "DKR", "04D4E5F6", T + 10 * MIN, OPEN_END))  # another badge


def _ingest(api, workshop, events):
    r = api.post("/api/v1/ingest", json=events.batch(), headers={"X-API-Key": workshop.api_key})
    assert r.status_code == 200, r.text
    return r.json()


def test_same_badge_on_two_machines_raises_one_alert(api, workshop, events, db_session):
    uid, awa = workshop.badges["Awa Diop"], workshop.artisans["Awa Diop"]
    events.tap_in("bandsaw-1", "node-bs1", 1, uid, awa, T)
    events.tap_in("lathe-1", "node-lt1", 1, uid, awa, T + 5 * MIN)  # the copy, while the first is open
    _ingest(api, workshop, events)
    alerts = db_session.scalars(select(SecurityAlert)).all()
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.kind, a.badge_uid, a.site, a.state) == ("badge_clone", uid, "DKR", "open")
    assert a.detail["machines"] == ["bandsaw-1", "lathe-1"]
    entries = db_session.scalars(select(AuditEntry).where(AuditEntry.action == "badge.clone_suspected")).all()
    assert [(e.actor, e.entity, e.entity_id) for e in entries] == [("system", "badge", uid)]
    # more events for the same sessions: no second alert
    events.events.clear()
    events.gw("lathe-1", "state", T + 6 * MIN, state="in_use", cause="session_open")
    events.close("lathe-1", "node-lt1:1:1", "tap_out", T + 7 * MIN)
    _ingest(api, workshop, events)
    db_session.expire_all()
    assert len(db_session.scalars(select(SecurityAlert)).all()) == 1
    r = api.get("/api/v1/security/alerts")
    assert r.status_code == 200 and [x["badge_uid"] for x in r.json()] == [uid]
    # The manager acknowledges it: once, recorded in the audit log; acknowledging again is a no-op.
    alert_id = r.json()[0]["id"]
    r = api.post(f"/api/v1/security/alerts/{alert_id}/ack", json={"note": "badge remplacé"})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged", r.text
    assert api.post(f"/api/v1/security/alerts/{alert_id}/ack").status_code == 200
    acks = db_session.scalars(select(AuditEntry).where(AuditEntry.action == "security_alert.acknowledged")).all()
    assert [(e.entity_id, e.details["note"]) for e in acks] == [(str(alert_id), "badge remplacé")]
    assert api.get("/api/v1/security/alerts", params={"state": "open"}).json() == []
    assert [x["id"] for x in api.get("/api/v1/security/alerts", params={"state": "acknowledged"}).json()] == [alert_id]
    r = api.post("/api/v1/security/alerts/999999/ack")
    assert r.status_code == 404 and "999999" in r.json()["detail"], r.text
    assert api.get("/api/v1/security/alerts", params={"state": "bogus"}).status_code == 422


def test_sessions_one_after_the_other_raise_nothing(api, workshop, events, db_session):
    uid, awa = workshop.badges["Awa Diop"], workshop.artisans["Awa Diop"]
    sid = events.tap_in("bandsaw-1", "node-bs1", 1, uid, awa, T)
    events.close("bandsaw-1", sid, "tap_out", T + 20 * MIN)
    events.tap_in("lathe-1", "node-lt1", 1, uid, awa, T + 25 * MIN)
    _ingest(api, workshop, events)
    assert db_session.scalars(select(SecurityAlert)).all() == []


def test_two_badges_at_once_are_fine(api, workshop, events, db_session):
    events.tap_in("bandsaw-1", "node-bs1", 1, workshop.badges["Awa Diop"], workshop.artisans["Awa Diop"], T)
    events.tap_in("lathe-1", "node-lt1", 1, workshop.badges["Moussa Ndiaye"], workshop.artisans["Moussa Ndiaye"],
                  T + MIN)
    _ingest(api, workshop, events)
    assert db_session.scalars(select(SecurityAlert)).all() == []
