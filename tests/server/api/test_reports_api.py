"""Reads: sessions (UTC and site-local time), usage, denials, summary, states, hand-checked on
one scripted day."""

from __future__ import annotations

import datetime as dt

import pytest

UTC = dt.timezone.utc
M = 60_000


def at(day: int, hh: int, mm: int = 0) -> int:
    return int(dt.datetime(2026, 3, day, hh, mm, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def day(api, workshop, make_events):
    """Monday 2 March 2026 in Dakar (UTC+0), plus one session on Tuesday."""
    awa, moussa, fatou = (workshop.artisans[n] for n in ("Awa Diop", "Moussa Ndiaye", "Fatou Sow"))
    ev = make_events()
    bs, lt = ("bandsaw-1", "node-bs1"), ("lathe-1", "node-lt1")
    # S1 Awa, bandsaw, 08:00-08:30 tap out, motor 08:05-08:25
    s1 = ev.tap_in(*bs, 1, "04A1B2C3", awa, at(2, 8), delay=0)
    ev.node(*bs, 1, "energy", at(2, 8), wh=1000.0)  # a metered bandsaw: 250 Wh in S1
    ev.node(*bs, 1, "motor", at(2, 8, 5), running=True)
    ev.deny(*bs, 1, "04D4E5F6", moussa, "machine_in_use", at(2, 8, 10))
    ev.node(*bs, 1, "motor", at(2, 8, 25), running=False)
    ev.node(*bs, 1, "energy", at(2, 8, 30), wh=1250.0)
    ev.close("bandsaw-1", s1, "tap_out", at(2, 8, 30))
    ev.deny(*bs, 1, "04112233445566", fatou, "not_qualified", at(2, 8, 40))
    # S2 Moussa, bandsaw, 09:00-09:45 idle, motor 09:10-09:15
    s2 = ev.tap_in(*bs, 1, "04D4E5F6", moussa, at(2, 9), delay=0)
    ev.node(*bs, 1, "motor", at(2, 9, 10), running=True)
    ev.node(*bs, 1, "motor", at(2, 9, 15), running=False)
    ev.close("bandsaw-1", s2, "idle", at(2, 9, 45))
    # S3 Awa, lathe, 10:00, motor from 10:10, last sign of life 10:40, power back 11:30 (boot 2)
    ev.tap_in(*lt, 1, "04A1B2C3", awa, at(2, 10), delay=0)
    ev.node(*lt, 1, "motor", at(2, 10, 10), running=True)
    ev.node(*lt, 1, "hb", at(2, 10, 40), relay=True, motor=True)
    ev.gw("lathe-1", "state", at(2, 10, 45), state="offline", cause="node_silent")
    ev.node(*lt, 2, "status", at(2, 11, 30), state="online", up=500)
    ev.gw("lathe-1", "state", at(2, 11, 30), state="available", cause="node_online")
    ev.deny(*lt, 2, "04112233445566", fatou, "not_qualified", at(2, 12))
    ev.deny(*lt, 2, "DEADBEEF", None, "unknown_badge", at(2, 12, 5))
    # S4 Awa, bandsaw, 14:00, still open, last heartbeat 14:15
    s4 = ev.tap_in(*bs, 1, "04A1B2C3", awa, at(2, 14), delay=0)
    ev.node(*bs, 1, "hb", at(2, 14, 15), relay=True, motor=False)
    # S5 Moussa, lathe, Tuesday 08:00-09:00
    s5 = ev.tap_in(*lt, 2, "04D4E5F6", moussa, at(3, 8), delay=0)
    ev.close("lathe-1", s5, "tap_out", at(3, 9))
    r = api.post("/api/v1/ingest", json=ev.batch(), headers={"X-API-Key": workshop.api_key})
    assert r.status_code == 200 and r.json()["rejected"] == []
    return {"awa": awa, "moussa": moussa, "fatou": fatou, "events": ev.events, "s1": s1, "s4": s4, "s5": s5}


def test_sessions_list_with_local_time(api, day):
    rows = api.get("/api/v1/sessions", params={"site": "DKR", "from": "2026-03-02", "to": "2026-03-02"}).json()
    assert len(rows) == 4
    s1 = rows[0]
    assert s1["id"] == day["s1"] and s1["artisan"] == day["awa"] and s1["artisan_name"] == "Awa Diop"
    assert (s1["start_utc"], s1["end_utc"]) == ("2026-03-02T08:00:00Z", "2026-03-02T08:30:00Z")
    assert (s1["start_local"], s1["end_local"]) == ("2026-03-02T08:00:00+00:00", "2026-03-02T08:30:00+00:00")
    assert (s1["badge_minutes"], s1["run_minutes"], s1["end_reason"]) == (30.0, 20.0, "tap_out")
    assert [(r["badge_minutes"], r["run_minutes"], r["end_reason"]) for r in rows[1:]] == [
        (45.0, 5.0, "idle"),
        (40.0, 30.0, "power_loss"),
        (15.0, 0.0, None),
    ]
    assert rows[3]["open"] is True and rows[3]["end_utc"] is None
    # Energy beside run time: the bandsaw's meter counted 250 Wh in S1 and nothing after it; the
    # lathe has no meter at all (None, not 0).
    assert (s1["energy_wh"], s1["energy_kwh"]) == (250.0, 0.25)
    assert [(r["machine"], r["energy_wh"]) for r in rows[1:]] == [("bandsaw-1", 0.0), ("lathe-1", None),
                                                                   ("bandsaw-1", 0.0)]
    only_awa = api.get("/api/v1/sessions", params={"artisan": day["awa"]}).json()
    assert [r["machine"] for r in only_awa] == ["bandsaw-1", "lathe-1", "bandsaw-1"]
    tuesday = api.get("/api/v1/sessions", params={"from": "2026-03-03"}).json()
    assert [r["id"] for r in tuesday] == [day["s5"]]
    lathe_monday = api.get("/api/v1/sessions", params={"machine": "lathe-1", "to": "2026-03-02"}).json()
    assert [(r["machine"], r["end_reason"]) for r in lathe_monday] == [("lathe-1", "power_loss")]


def test_usage_per_artisan_and_machine(api, day):
    params = {"from": "2026-03-02", "to": "2026-03-02"}
    by_artisan = {u["artisan"]: u for u in api.get("/api/v1/usage/artisans", params=params).json()}
    assert (by_artisan[day["awa"]]["sessions"], by_artisan[day["awa"]]["badge_ms"], by_artisan[day["awa"]]["run_ms"]) == (
        3,
        (30 + 40 + 15) * M,
        (20 + 30) * M,
    )
    assert (by_artisan[day["moussa"]]["sessions"], by_artisan[day["moussa"]]["badge_ms"], by_artisan[day["moussa"]]["run_ms"]) == (
        1,
        45 * M,
        5 * M,
    )
    assert day["fatou"] not in by_artisan
    by_machine = {u["machine"]: u for u in api.get("/api/v1/usage/machines", params=params).json()}
    assert (by_machine["bandsaw-1"]["sessions"], by_machine["bandsaw-1"]["badge_ms"], by_machine["bandsaw-1"]["run_ms"]) == (
        3,
        90 * M,
        25 * M,
    )
    assert (by_machine["lathe-1"]["sessions"], by_machine["lathe-1"]["badge_ms"], by_machine["lathe-1"]["run_ms"]) == (1, 40 * M, 30 * M)
    assert (by_machine["bandsaw-1"]["energy_kwh"], by_machine["lathe-1"]["energy_kwh"]) == (0.25, None)
    all_time = {u["artisan"]: u for u in api.get("/api/v1/usage/artisans").json()}
    assert all_time[day["moussa"]]["badge_ms"] == (45 + 60) * M


def test_denials_by_reason(api, day):
    assert api.get("/api/v1/denials").json() == {"machine_in_use": 1, "not_qualified": 2, "unknown_badge": 1}
    assert api.get("/api/v1/denials", params={"machine": "lathe-1"}).json() == {"not_qualified": 1, "unknown_badge": 1}
    assert api.get("/api/v1/denials", params={"from": "2026-03-03"}).json() == {}


def test_summary_of_the_day(api, day):
    s = api.get("/api/v1/summary", params={"site": "DKR", "from": "2026-03-02", "to": "2026-03-02"}).json()
    monday = [e for e in day["events"] if at(2, 0) <= e["t"] < at(3, 0)]
    assert s["sessions"] == 4 and s["open_sessions"] == 1
    assert s["denied"] == {"machine_in_use": 1, "not_qualified": 2, "unknown_badge": 1}
    assert s["events"] == len(monday) and s["dead_letters"] == 0
    assert s["artisans"] == [
        {"id": day["awa"], "name": "Awa Diop", "sessions": 3, "badge_hours": 1.42, "run_hours": 0.83},
        {"id": day["moussa"], "name": "Moussa Ndiaye", "sessions": 1, "badge_hours": 0.75, "run_hours": 0.08},
    ]
    assert s["machines"] == [
        {"id": "bandsaw-1", "name": "Scie 1", "type": "bandsaw", "sessions": 3, "badge_hours": 1.5, "run_hours": 0.42, "state": "in_use"},
        {"id": "lathe-1", "name": "Tour 1", "type": "lathe", "sessions": 1, "badge_hours": 0.67, "run_hours": 0.5, "state": "available"},
        {"id": "lathe-2", "name": "Tour 2", "type": "lathe", "sessions": 0, "badge_hours": 0.0, "run_hours": 0.0, "state": None},
    ]
    whole = api.get("/api/v1/summary").json()
    assert whole["sessions"] == 5 and whole["events"] == len(day["events"])


def test_machine_state_history(api, day):
    states = api.get("/api/v1/machines/lathe-1/states").json()
    assert [(s["state"], s["cause"]) for s in states] == [
        ("in_use", "session_open"),
        ("offline", "node_silent"),
        ("available", "node_online"),
        ("in_use", "session_open"),
        ("available", "tap_out"),
    ]
    assert states[1]["t_utc"] == "2026-03-02T10:45:00Z"
    assert api.get("/api/v1/machines/nope/states").status_code == 404


def test_local_time_and_day_bounds_follow_the_site_zone(api, workshop, make_events):
    """Douala is UTC+1: a session at 23:30 UTC on Monday belongs to Tuesday there."""
    api.post("/api/v1/sites", json={"code": "DLA", "name": "CRP Douala", "tz": "Africa/Douala", "currency": "XAF"})
    api.post("/api/v1/machines", json={"id": "saw-dla", "site": "DLA", "type": "bandsaw", "name": "Scie", "node_id": "node-dla"})
    key = api.post("/api/v1/gateways", json={"id": "gw-dla", "site": "DLA"}).json()["api_key"]
    ev = make_events(site="DLA", gateway="gw-dla")
    sid = ev.tap_in("saw-dla", "node-dla", 1, "04A1B2C3", 1, at(2, 23, 30), delay=0)
    ev.close("saw-dla", sid, "tap_out", at(3, 0, 15))
    assert api.post("/api/v1/ingest", json=ev.batch(), headers={"X-API-Key": key}).json()["accepted"] == len(ev.events)
    rows = api.get("/api/v1/sessions", params={"site": "DLA", "from": "2026-03-03", "to": "2026-03-03"}).json()
    assert len(rows) == 1
    assert rows[0]["start_local"] == "2026-03-03T00:30:00+01:00" and rows[0]["start_utc"] == "2026-03-02T23:30:00Z"
    assert api.get("/api/v1/sessions", params={"site": "DLA", "to": "2026-03-02"}).json() == []


@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/v1/sessions", {"from": "yesterday"}),
        ("/api/v1/sessions", {"from": "2026-13-01"}),
        ("/api/v1/sessions", {"from": "2026-03-05", "to": "2026-03-01"}),
        ("/api/v1/sessions", {"artisan": "x"}),
        ("/api/v1/sessions", {"artisan": 10**15}),
        ("/api/v1/sessions", {"limit": 0}),
        ("/api/v1/usage/machines", {"to": "32/01/2026"}),
        ("/api/v1/summary", {"from": "2026-03-02T25:00"}),
    ],
)
def test_bad_filters_are_422(api, workshop, path, params):
    r = api.get(path, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_unknown_site_filter_is_404(api, workshop):
    r = api.get("/api/v1/summary", params={"site": "ZZZ"})
    assert r.status_code == 404 and "ZZZ" in r.json()["detail"]
