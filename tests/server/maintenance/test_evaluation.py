"""Alerts raised from forwarded events, offline silence, run-hour and calendar plans,
escalation; built as a gateway forwards events and sent through POST /ingest."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy import select

from server.maintenance import alerts as alerts_mod
from server.maintenance import evaluation
from server.maintenance.evaluation import check_offline, evaluate, evaluate_calendar, on_events
from server.maintenance.models import Alert, NotificationDelivery, PlanCounter
from server.maintenance.plans import conditions_for
from server.models import Event, Machine
from server.timeutil import ms_to_utc

T0 = int(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)
S = 1000
MIN = 60 * S
H = 60 * MIN


def ok(r) -> Any:
    assert r.status_code in (200, 201, 204), r.text
    return r.json() if r.content else None


def send(api, workshop, events, evs=None) -> dict:
    """POST the events to /ingest as the workshop's gateway; returns the result."""
    batch = events.batch(evs)
    r = api.post("/api/v1/ingest", json=batch, headers={"X-API-Key": workshop.api_key})
    assert r.status_code == 200, r.text
    if evs is None:
        events.events.clear()
    return r.json()


def alerts(api, **params) -> list[dict]:
    return ok(api.get("/api/v1/alerts", params=params))


def run_session(events, machine, node, uid, artisan, start, run_from, run_to, end, boot=1) -> str:
    """Tap in, motor on/off, tap out: a session of (run_to - run_from) motor run time."""
    sid = events.tap_in(machine, node, boot, uid, artisan, start)
    events.node(machine, node, boot, "motor", run_from, running=True, amps=6.0)
    events.node(machine, node, boot, "motor", run_to, running=False)
    events.close(machine, sid, "tap_out", end)
    return sid


def snapshot_machine(api, workshop, machine: str) -> dict:
    snap = ok(api.get("/api/v1/gateway/snapshot", headers={"X-API-Key": workshop.api_key}))
    return {m["id"]: m for m in snap["machines"]}[machine]


def add_targets(api) -> dict:
    tech = ok(api.post("/api/v1/technicians", json={"site": "DKR", "name": "Ibrahima Fall", "phone": "+221770000001",
                                                     "email": "ibrahima@example.org", "lang": "fr"}))
    email = ok(api.post("/api/v1/notification-targets", json={"technician_id": tech["id"], "channel": "email",
                                                               "address": "ibrahima@example.org"}))
    boss = ok(api.post("/api/v1/notification-targets", json={"site": "DKR", "channel": "email",
                                                              "address": "manager@example.org", "escalation_only": True}))
    return {"tech": tech, "email": email, "boss": boss}


def deliveries(api, **params) -> list[dict]:
    return ok(api.get("/api/v1/notifications", params=params))


# --------------------------------------------------------------------------- faults


def test_critical_fault_raises_one_alert_and_locks_the_machine(api, workshop, events):
    add_targets(api)
    events.node("bandsaw-1", "node-bs1", 1, "status", T0, state="online", up=1000)
    events.node("bandsaw-1", "node-bs1", 1, "fault", T0 + S, code="estop", active=True)
    batch = list(events.events)
    send(api, workshop, events)
    got = alerts(api)
    assert [(a["kind"], a["machine"], a["cause"], a["state"], a["critical"]) for a in got] == [
        ("fault", "bandsaw-1", "fault:estop", "open", True)]
    assert got[0]["raised_at"] == ms_to_utc(T0 + S).isoformat().replace("+00:00", "Z")
    m = snapshot_machine(api, workshop, "bandsaw-1")
    assert m["locked"] is True and m["lock_reason"] == "fault:estop"
    # the same batch again (forwarder retry) and the same fault repeated: still one alert
    send(api, workshop, events, batch)
    events.node("bandsaw-1", "node-bs1", 1, "fault", T0 + 5 * S, code="estop", active=True)
    send(api, workshop, events)
    assert len(alerts(api)) == 1
    assert [d["event"] for d in deliveries(api)] == ["raised"]  # technician only, not the manager
    # cleared at the node: a critical alert stays open (and the machine locked) until resolved
    events.node("bandsaw-1", "node-bs1", 1, "fault", T0 + MIN, code="estop", active=False)
    send(api, workshop, events)
    a = alerts(api)[0]
    assert a["state"] == "open" and a["cleared_at"] is not None
    assert snapshot_machine(api, workshop, "bandsaw-1")["locked"] is True
    ok(api.post(f"/api/v1/alerts/{a['id']}/resolve", json={"by": "Ibrahima"}))
    assert snapshot_machine(api, workshop, "bandsaw-1")["locked"] is False
    # a new fault after the resolution is a new alert
    events.node("bandsaw-1", "node-bs1", 1, "fault", T0 + 2 * H, code="estop", active=True)
    send(api, workshop, events)
    assert [(a["state"]) for a in alerts(api)] == ["open", "resolved"]


def test_non_critical_fault_resolves_itself_and_does_not_lock(api, workshop, events):
    events.node("lathe-1", "node-lt1", 3, "fault", T0, code="sensor", active=True)
    send(api, workshop, events)
    assert [(a["cause"], a["critical"], a["state"]) for a in alerts(api)] == [("fault:sensor", False, "open")]
    assert snapshot_machine(api, workshop, "lathe-1")["locked"] is False
    events.node("lathe-1", "node-lt1", 3, "fault", T0 + MIN, code="sensor", active=False)
    send(api, workshop, events)
    a = alerts(api)[0]
    assert (a["state"], a["resolved_by"]) == ("resolved", "auto")


def test_fault_plan_decides_criticality(api, workshop, events):
    ok(api.post("/api/v1/maintenance/plans", json={"machine_type": "lathe", "kind": "fault", "fault_code": "sensor",
                                                   "task": "Replace the sensor", "critical": True}))
    ok(api.post("/api/v1/maintenance/plans", json={"machine": "bandsaw-1", "kind": "fault", "fault_code": "estop",
                                                   "task": "Check the e-stop", "critical": False}))
    events.node("lathe-1", "node-lt1", 1, "fault", T0, code="sensor", active=True)
    events.node("bandsaw-1", "node-bs1", 1, "fault", T0, code="estop", active=True)
    send(api, workshop, events)
    by_machine = {a["machine"]: a for a in alerts(api)}
    assert by_machine["lathe-1"]["critical"] is True and by_machine["bandsaw-1"]["critical"] is False
    assert snapshot_machine(api, workshop, "lathe-1")["locked"] is True
    assert snapshot_machine(api, workshop, "bandsaw-1")["locked"] is False


def test_gateway_fault_alert_and_node_fault_are_one_alert(api, workshop, events):
    events.node("bandsaw-1", "node-bs1", 1, "fault", T0, code="thermal", active=True)
    events.gw("bandsaw-1", "alert", T0 + 10, cause="fault:thermal", kind="fault", state="raised", code="thermal", critical=True)
    send(api, workshop, events)
    assert [(a["cause"], a["kind"]) for a in alerts(api)] == [("fault:thermal", "fault")]


# --------------------------------------------------------------------------- conditions


def condition_plan(api, **over) -> dict:
    body = {"machine": "bandsaw-1", "kind": "condition", "metric": "temp", "above": 70, "for_s": 300,
            "task": "Check the motor cooling", **over}
    return ok(api.post("/api/v1/maintenance/plans", json=body))


def test_condition_alert_from_gateway_fact(api, workshop, events):
    plan = condition_plan(api)
    cause = f"condition:{plan['id']}"
    events.gw("bandsaw-1", "alert", T0 + 5 * MIN, cause=cause, kind="condition", state="raised", metric="temp",
              value=74.5, limit=70, for_s=300, since=T0, critical=False)
    send(api, workshop, events)
    a = alerts(api, kind="condition")
    assert [(x["cause"], x["state"], x["plan"], x["detail"]["task"], x["detail"]["value"]) for x in a] == [
        (cause, "open", plan["id"], "Check the motor cooling", 74.5)]
    # raised again while open (gateway restarted without its state): still one alert
    events.gw("bandsaw-1", "alert", T0 + 20 * MIN, cause=cause, kind="condition", state="raised", metric="temp",
              value=75.0, limit=70)
    send(api, workshop, events)
    assert len(alerts(api)) == 1
    events.gw("bandsaw-1", "alert", T0 + 30 * MIN, cause=cause, kind="condition", state="cleared", metric="temp",
              value=60.0, limit=70)
    send(api, workshop, events)
    assert alerts(api)[0]["state"] == "resolved"
    assert snapshot_machine(api, workshop, "bandsaw-1")["locked"] is False


def test_critical_condition_locks(api, workshop, events):
    plan = condition_plan(api, metric="vib", above=11.2, for_s=60, critical=True)
    events.gw("bandsaw-1", "alert", T0, cause=f"condition:{plan['id']}", kind="condition", state="raised",
              metric="vib", value=14.0, limit=11.2, for_s=60)
    send(api, workshop, events)
    assert alerts(api)[0]["critical"] is True
    assert snapshot_machine(api, workshop, "bandsaw-1")["locked"] is True


def test_bad_alert_fact_is_dead_lettered(api, workshop, events):
    events.gw("bandsaw-1", "alert", T0, cause="condition:1", kind="condition", state="maybe")
    r = send(api, workshop, events)
    assert r["accepted"] == 0 and r["rejected"][0]["reason"] == "invalid"
    assert alerts(api) == []


def test_conditions_for_snapshot(api, workshop, sm):
    p1 = condition_plan(api)
    p2 = condition_plan(api, machine=None, machine_type="bandsaw", metric="current", above=16, for_s=10, critical=True)
    condition_plan(api, machine="lathe-1", metric="vib", above=9)
    ok(api.patch(f"/api/v1/maintenance/plans/{p1['id']}", json={"enabled": False}))
    with sm() as db:
        got = conditions_for(db, db.get(Machine, "bandsaw-1"))
    assert [(c.id, c.metric, c.above, c.for_s, c.critical) for c in got] == [(str(p2["id"]), "current", 16.0, 10, True)]
    # the gateway gets the same rules in its snapshot
    assert snapshot_machine(api, workshop, "bandsaw-1")["conditions"] == [
        {"id": str(p2["id"]), "metric": "current", "above": 16.0, "for_s": 10, "critical": True}]
    assert [c["metric"] for c in snapshot_machine(api, workshop, "lathe-1")["conditions"]] == ["vib"]
    assert snapshot_machine(api, workshop, "lathe-2")["conditions"] == []


# --------------------------------------------------------------------------- offline


def test_offline_alert_after_the_limit_and_resolved_when_back(api, workshop, events, sm):
    limit = evaluation.OFFLINE_ALERT_AFTER_S * S
    events.gw("lathe-1", "state", T0, state="available", cause="status")
    events.gw("lathe-1", "state", T0 + MIN, state="offline", cause="silent")
    events.node("bandsaw-1", "node-bs1", 1, "hb", T0 + MIN + limit - S, relay=False, motor=False)
    send(api, workshop, events)
    assert alerts(api) == []  # not silent long enough yet
    events.node("bandsaw-1", "node-bs1", 1, "hb", T0 + MIN + limit, relay=False, motor=False)
    send(api, workshop, events)
    got = alerts(api)
    assert [(a["kind"], a["machine"], a["state"]) for a in got] == [("offline", "lathe-1", "open")]
    assert got[0]["raised_at"] == ms_to_utc(T0 + MIN + limit).isoformat().replace("+00:00", "Z")
    with sm() as db:  # the clock-driven pass finds nothing more to raise
        assert check_offline(db, T0 + 10 * H) == []
    events.gw("lathe-1", "state", T0 + 2 * H, state="available", cause="status")
    send(api, workshop, events)
    a = alerts(api)[0]
    assert a["state"] == "resolved" and a["resolved_by"] == "auto"


def test_offline_from_the_clock(api, workshop, events, sm):
    events.gw("lathe-2", "state", T0, state="offline", cause="lwt")
    send(api, workshop, events)
    assert alerts(api) == []
    with sm() as db:
        evaluate(db, ms_to_utc(T0 + evaluation.OFFLINE_ALERT_AFTER_S * S))
        db.commit()
    assert [(a["kind"], a["machine"]) for a in alerts(api)] == [("offline", "lathe-2")]


# --------------------------------------------------------------------------- run-hour plans


def maintenance(api, machine: str) -> dict:
    return ok(api.get(f"/api/v1/machines/{machine}/maintenance"))


def test_run_hour_plan_due_soon_due_overdue_then_work_order_resets(api, workshop, events):
    add_targets(api)
    plan = ok(api.post("/api/v1/maintenance/plans", json={
        "machine": "bandsaw-1", "kind": "run_hours", "interval": 20, "due_soon_share": 0.1,
        "task": "Change the blade", "run_h": 17.5}))
    assert plan["counters"] == [{"machine": "bandsaw-1", "run_h": 17.5, "status": "ok", "cycle": 0, "last_service_on": None}]
    awa, uid = workshop.artisans["Awa Diop"], workshop.badges["Awa Diop"]
    t = T0
    steps = []
    for run_h in (0.25, 1.0, 2.0, 1.0):  # 17.75 ok, 18.75 due soon, 20.75 due, 21.75 due, then +2 overdue
        run_session(events, "bandsaw-1", "node-bs1", uid, awa, t, t + MIN, t + MIN + int(run_h * H), t + 2 * MIN + int(run_h * H))
        send(api, workshop, events)
        t += 4 * H
        steps.append([(a["kind"], a["state"]) for a in alerts(api)])
    assert steps == [[], [("due_soon", "open")], [("due", "open")], [("due", "open")]]
    run_session(events, "bandsaw-1", "node-bs1", uid, awa, t, t + MIN, t + MIN + 2 * H, t + 2 * MIN + 2 * H)
    send(api, workshop, events)
    (a,) = alerts(api)
    assert (a["kind"], a["plan"], a["detail"]["used"], a["detail"]["left"]) == ("overdue", plan["id"], 23.75, -3.75)
    # one notification per step of the alert on the technician's channel
    assert sorted(d["event"] for d in deliveries(api, alert=a["id"])) == ["due", "overdue", "raised"]
    rec = maintenance(api, "bandsaw-1")["coming_due"]
    assert [(c["plan"], c["status"], c["used"], c["left"]) for c in rec] == [(plan["id"], "overdue", 23.75, -3.75)]

    wo = ok(api.post("/api/v1/work-orders", json={"alert_id": a["id"], "by": "Ibrahima"}))
    assert (wo["machine"], wo["plan"], wo["title"]) == ("bandsaw-1", plan["id"], "Change the blade")
    ok(api.patch(f"/api/v1/work-orders/{wo['id']}", json={"work_done": "Blade changed", "minutes_spent": 35,
                                                          "parts": [{"name": "Blade 2450 mm", "qty": 1}]}))
    closed = ok(api.post(f"/api/v1/work-orders/{wo['id']}/close", json={"by": "Ibrahima"}))
    assert closed["state"] == "closed" and closed["minutes_spent"] == 35 and closed["parts"][0]["name"] == "Blade 2450 mm"
    assert alerts(api)[0]["state"] == "resolved"
    rec = maintenance(api, "bandsaw-1")["coming_due"]
    assert [(c["status"], c["used"], c["left"]) for c in rec] == [("ok", 0.0, 20.0)]
    # the counter counts again from zero: 1 h run after the service is 1 h, no alert (sessions
    # before the service, even forwarded later, do not count: T0 is in the past)
    t = int(time.time() * 1000) + H
    run_session(events, "bandsaw-1", "node-bs1", uid, awa, t, t + MIN, t + MIN + H, t + 2 * MIN + H)
    send(api, workshop, events)
    assert [c["used"] for c in maintenance(api, "bandsaw-1")["coming_due"]] == [1.0]
    assert len(alerts(api)) == 1


def test_machine_type_plan_counts_per_machine_and_twice_is_once(api, workshop, events, sm):
    plan = ok(api.post("/api/v1/maintenance/plans", json={"machine_type": "lathe", "kind": "run_hours", "interval": 2,
                                                          "task": "Grease"}))
    awa, uid = workshop.artisans["Awa Diop"], workshop.badges["Awa Diop"]
    run_session(events, "lathe-1", "node-lt1", uid, awa, T0, T0 + MIN, T0 + MIN + int(1.9 * H), T0 + 2 * H)
    send(api, workshop, events)
    assert [(a["machine"], a["kind"]) for a in alerts(api)] == [("lathe-1", "due_soon")]
    with sm() as db:  # the same events evaluated again change nothing
        on_events(db, db.scalars(select(Event)).all())
        db.commit()
        counters = {c.machine: c.run_ms for c in db.scalars(select(PlanCounter).where(PlanCounter.plan_id == plan["id"]))}
    assert counters == {"lathe-1": int(1.9 * H), "lathe-2": 0}
    assert len(alerts(api)) == 1


# --------------------------------------------------------------------------- calendar plans


def test_calendar_plan(api, workshop, sm):
    today = dt.datetime.now(dt.timezone.utc).date()
    plan = ok(api.post("/api/v1/maintenance/plans", json={
        "machine": "lathe-2", "kind": "calendar_days", "interval": 30, "task": "Check the belts",
        "last_service_on": (today - dt.timedelta(days=20)).isoformat()}))
    assert plan["counters"][0]["status"] == "ok"
    noon = dt.datetime.combine(today, dt.time(12), dt.timezone.utc)
    kinds = []
    for days in (6, 7, 10, 13):  # 26 ok, 27 due soon, 30 due, 33 overdue
        with sm() as db:
            evaluate_calendar(db, noon + dt.timedelta(days=days))
            db.commit()
        kinds.append([a["kind"] for a in alerts(api)])
    assert kinds == [[], ["due_soon"], ["due"], ["overdue"]]


# --------------------------------------------------------------------------- escalation


def test_escalation_fires_once_for_unacknowledged_alerts(api, workshop, events, sm):
    add_targets(api)
    events.node("bandsaw-1", "node-bs1", 1, "fault", T0, code="thermal", active=True)
    events.node("lathe-1", "node-lt1", 1, "fault", T0, code="thermal", active=True)
    send(api, workshop, events)
    bs, lt = sorted(alerts(api), key=lambda a: a["machine"])
    ok(api.post(f"/api/v1/alerts/{lt['id']}/ack", json={"by": "Ibrahima"}))
    after = ms_to_utc(T0 + alerts_mod.ESCALATE_AFTER_S * S)
    with sm() as db:
        assert alerts_mod.escalate(db, after - dt.timedelta(seconds=1)) == []
        assert [a.id for a in alerts_mod.escalate(db, after)] == [bs["id"]]
        db.commit()
        assert alerts_mod.escalate(db, after + dt.timedelta(hours=5)) == []
        db.commit()
        esc = db.scalars(select(NotificationDelivery).where(NotificationDelivery.event == "escalated")).all()
        # the technician and the escalation-only manager, once each, only for the unacknowledged alert
        assert sorted((d.alert_id, d.target_id) for d in esc) == sorted(
            [(bs["id"], t) for t in {d["target"] for d in deliveries(api)}])
        assert len(esc) == 2
        assert db.get(Alert, bs["id"]).escalated_at is not None and db.get(Alert, lt["id"]).escalated_at is None
