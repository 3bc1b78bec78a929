"""Ingestion: exactly once, dead letters, and the sessions of record for each way a session
ends (tap-out, idle, handover, power loss) with motor run time."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from server.api_keys import hash_api_key
from server.ingest import ingest_batch
from server.models import DeadLetter, Event, Gateway, MachineStateChange, Session, Site
from server.session_store import all_sessions_of


T0 = int(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)  # a Monday
MIN = 60_000
AWA, MOUSSA = 1, 2
UID_AWA, UID_MOUSSA = "04A1B2C3", "04D4E5F6"


@pytest.fixture
def gw_db(db_session):
    """A bare database with site DKR and gateway gw-dkr (events need no registry)."""
    db_session.add(Site(code="DKR", name="CRP Dakar", tz="Africa/Dakar"))
    db_session.add(Site(code="ABJ", name="CRP Abidjan", tz="Africa/Abidjan"))
    db_session.flush()
    db_session.add(Gateway(id="gw-dkr", site="DKR", api_key_hash=hash_api_key("k")))
    db_session.commit()
    return db_session


def sessions(db) -> dict[str, tuple]:
    rows = db.scalars(select(Session).order_by(Session.id)).all()
    return {
        s.id: (s.site, s.machine, s.artisan, s.badge_uid, s.start_ms, s.end_ms, s.end_reason, s.run_ms, s.last_ms, s.open)
        for s in rows
    }


def ingest(db, ev, events=None):
    r = ingest_batch(db, "gw-dkr", ev.ingest_batch(events))
    db.commit()
    return r


def only(db) -> Session:
    rows = db.scalars(select(Session)).all()
    assert len(rows) == 1, rows
    return rows[0]


# --------------------------------------------------------------------------- session endings


def test_tap_out_with_motor_run_time(gw_db, events):
    sid = events.tap_in("bandsaw-1", "node-bs1", 1, UID_AWA, AWA, T0)
    events.node("bandsaw-1", "node-bs1", 1, "relay", T0 + 100, on=True)
    events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + 2 * MIN, running=True, amps=4.2)
    events.node("bandsaw-1", "node-bs1", 1, "hb", T0 + 5 * MIN, relay=True, motor=True)
    events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + 12 * MIN, running=False)
    events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + 14 * MIN, running=True)
    events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + 17 * MIN, running=False)
    events.node("bandsaw-1", "node-bs1", 1, "badge", T0 + 20 * MIN, uid=UID_AWA)
    events.close("bandsaw-1", sid, "tap_out", T0 + 20 * MIN + 50)
    r = ingest(gw_db, events)
    assert (r.accepted, r.duplicates, r.rejected) == (len(events.events), 0, [])
    s = only(gw_db)
    assert s.id == "node-bs1:1:1" and s.artisan == AWA and s.badge_uid == UID_AWA and s.site == "DKR"
    assert (s.start_ms, s.end_ms, s.end_reason, s.open) == (T0 + 50, T0 + 20 * MIN + 50, "tap_out", False)
    assert s.run_ms == 13 * MIN  # 10 min + 3 min of motor


def test_idle_close(gw_db, events):
    sid = events.tap_in("lathe-1", "node-lt1", 3, UID_AWA, AWA, T0)
    events.node("lathe-1", "node-lt1", 3, "motor", T0 + MIN, running=True)
    events.node("lathe-1", "node-lt1", 3, "motor", T0 + 4 * MIN, running=False)
    events.node("lathe-1", "node-lt1", 3, "hb", T0 + 10 * MIN, relay=True, motor=False)
    events.close("lathe-1", sid, "idle", T0 + 19 * MIN)
    ingest(gw_db, events)
    s = only(gw_db)
    assert (s.end_ms, s.end_reason, s.run_ms, s.open) == (T0 + 19 * MIN, "idle", 3 * MIN, False)


def test_handover_closes_the_first_session_when_the_second_opens(gw_db, events):
    a = events.tap_in("bandsaw-1", "node-bs1", 1, UID_AWA, AWA, T0)
    events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + MIN, running=True)
    events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + 6 * MIN, running=False)
    b = events.tap_in("bandsaw-1", "node-bs1", 1, UID_MOUSSA, MOUSSA, T0 + 8 * MIN)
    events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + 9 * MIN, running=True)
    events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + 11 * MIN, running=False)
    events.close("bandsaw-1", b, "tap_out", T0 + 15 * MIN)
    ingest(gw_db, events)
    rows = sessions(gw_db)
    assert rows[a][4:8] == (T0 + 50, T0 + 8 * MIN + 50, "handover", 5 * MIN)
    assert rows[b][2] == MOUSSA
    assert rows[b][4:8] == (T0 + 8 * MIN + 50, T0 + 15 * MIN, "tap_out", 2 * MIN)


def test_power_loss_closes_at_last_sign_of_life_not_at_reboot(gw_db, events):
    sid = events.tap_in("bandsaw-1", "node-bs1", 1, UID_AWA, AWA, T0)
    events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + 5 * MIN, running=True)
    events.node("bandsaw-1", "node-bs1", 1, "hb", T0 + 10 * MIN, relay=True, motor=True)
    # power cut: no close from the gateway; the node comes back 30 minutes later, boot 2
    events.node("bandsaw-1", "node-bs1", 2, "status", T0 + 40 * MIN, state="online", up=1200, fw="1.0")
    ingest(gw_db, events)
    s = only(gw_db)
    assert s.id == sid
    assert (s.end_ms, s.end_reason, s.open) == (T0 + 10 * MIN, "power_loss", False)
    assert s.run_ms == 5 * MIN  # motor from +5 to the last sign of life at +10, not the outage


def test_power_loss_by_last_will(gw_db, events):
    events.tap_in("lathe-1", "node-lt1", 7, UID_AWA, AWA, T0)
    events.node("lathe-1", "node-lt1", 7, "hb", T0 + 3 * MIN, relay=True, motor=False)
    events.node("lathe-1", "node-lt1", 7, "status", T0 + 4 * MIN, seq=0, state="offline")
    ingest(gw_db, events)
    s = only(gw_db)
    assert (s.end_ms, s.end_reason) == (T0 + 3 * MIN, "power_loss")


def test_open_session_stays_open_and_tracks_last_sign_of_life(gw_db, events):
    events.tap_in("bandsaw-1", "node-bs1", 1, UID_AWA, AWA, T0)
    events.node("bandsaw-1", "node-bs1", 1, "hb", T0 + 7 * MIN, relay=True, motor=False)
    ingest(gw_db, events)
    s = only(gw_db)
    assert s.open is True and s.end_ms is None and s.last_ms == T0 + 7 * MIN and s.badge_ms == 7 * MIN - 50


def test_session_closed_by_a_later_batch(gw_db, events):
    sid = events.tap_in("bandsaw-1", "node-bs1", 1, UID_AWA, AWA, T0)
    ingest(gw_db, events)
    assert only(gw_db).open is True
    n = len(events.events)
    events.close("bandsaw-1", sid, "tap_out", T0 + 30 * MIN)
    ingest(gw_db, events, events.events[n:])
    s = only(gw_db)
    assert (s.open, s.end_ms, s.end_reason) == (False, T0 + 30 * MIN, "tap_out")


def test_state_events_record_machine_states_once(gw_db, events):
    sid = events.tap_in("bandsaw-1", "node-bs1", 1, UID_AWA, AWA, T0)
    events.close("bandsaw-1", sid, "tap_out", T0 + MIN)
    ingest(gw_db, events)
    ingest(gw_db, events)
    rows = gw_db.scalars(select(MachineStateChange).order_by(MachineStateChange.t_ms)).all()
    assert [(r.state, r.cause) for r in rows] == [("in_use", "session_open"), ("available", "tap_out")]


# --------------------------------------------------------------------------- exactly once


def test_same_batch_twice_is_stored_once(gw_db, events):
    sid = events.tap_in("bandsaw-1", "node-bs1", 1, UID_AWA, AWA, T0)
    events.close("bandsaw-1", sid, "tap_out", T0 + 9 * MIN)
    first = ingest(gw_db, events)
    before = sessions(gw_db)
    second = ingest(gw_db, events)
    assert (first.accepted, first.duplicates) == (len(events.events), 0)
    assert (second.accepted, second.duplicates) == (0, len(events.events))
    assert gw_db.scalar(select(func.count(Event.id))) == len(events.events)
    assert sessions(gw_db) == before


def test_duplicates_inside_one_batch_count_once(gw_db, events):
    e = events.node("bandsaw-1", "node-bs1", 1, "hb", T0, relay=False, motor=False)
    r = ingest(gw_db, events, [e, dict(e), dict(e)])
    assert (r.accepted, r.duplicates) == (1, 2)


def test_gateway_last_seen_is_bookkept(gw_db, events):
    events.node("bandsaw-1", "node-bs1", 1, "hb", T0, relay=False, motor=False)
    assert gw_db.get(Gateway, "gw-dkr").last_seen is None
    ingest(gw_db, events)
    gw_db.expire_all()
    assert gw_db.get(Gateway, "gw-dkr").last_seen is not None


# --------------------------------------------------------------------------- dead letters


def test_invalid_events_are_dead_lettered_and_the_rest_accepted(gw_db, events):
    good = events.node("bandsaw-1", "node-bs1", 1, "hb", T0, relay=True, motor=False)
    bad = [
        {**good, "seq": 99, "t": 12},  # a broken clock (1970)
        {k: v for k, v in good.items() if k != "source"},  # no source
        {**good, "seq": 100, "kind": "teleport"},  # unknown kind
        {**good, "seq": 101, "site": "ABJ"},  # another site's event
        {**good, "seq": 102, "body": {"relay": "yes please", "motor": False}},  # bad body
        {**good, "seq": 103, "kind": "session_open", "body": {"artisan": 1}},  # no session id
        {**good, "seq": 104, "kind": "state", "body": {"state": "melting"}},
        {**good, "seq": 105, "machine": None, "kind": "motor", "body": {"running": True}},
        {**good, "seq": 106, "skew_ms": 10**30},  # would overflow the column
    ]
    r = ingest(gw_db, events, [good, *bad])
    assert r.accepted == 1 and r.duplicates == 0
    assert [(x.index, x.reason) for x in r.rejected] == [
        (1, "invalid"),
        (2, "invalid"),
        (3, "unknown_kind"),
        (4, "wrong_site"),
        (5, "invalid"),
        (6, "invalid"),
        (7, "invalid"),
        (8, "no_machine"),
        (9, "invalid"),
    ]
    letters = gw_db.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
    assert [d.reason for d in letters] == [x.reason for x in r.rejected]
    assert all(d.source == "ingest" and d.gateway == "gw-dkr" for d in letters)
    assert '"teleport"' in letters[2].payload  # the event is kept as it came
    assert "ABJ" in letters[3].detail
    assert "body.relay" in letters[4].detail


# --------------------------------------------------------------------------- late and out-of-order


def test_late_motor_off_updates_the_earlier_session(gw_db, events):
    """A motor-off that arrives after the next session was stored still fixes the run time of
    the session it belongs to (the window reaches back across the running motor)."""
    a = events.tap_in("bandsaw-1", "node-bs1", 1, UID_AWA, AWA, T0)
    events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + MIN, running=True)
    b = events.tap_in("bandsaw-1", "node-bs1", 1, UID_MOUSSA, MOUSSA, T0 + 10 * MIN)
    late_off = events.node("bandsaw-1", "node-bs1", 1, "motor", T0 + 12 * MIN, running=False)
    events.close("bandsaw-1", b, "tap_out", T0 + 20 * MIN)
    events.node("bandsaw-1", "node-bs1", 2, "status", T0 + 30 * MIN, state="online", up=10)
    on_time = [e for e in events.events if e is not late_off]
    ingest(gw_db, events, on_time)
    ingest(gw_db, events, [late_off])
    got = sessions(gw_db)
    expected = {s.id: s for s in all_sessions_of(gw_db)}
    assert got[a][7] == expected[a].run_ms == 9 * MIN + 50
    assert got[b][7] == expected[b].run_ms == 2 * MIN - 50


def test_nul_characters_are_dead_lettered_not_crashing(gw_db, events):
    good = events.node("bandsaw-1", "node-bs1", 1, "hb", T0, relay=True, motor=False)
    gw = dict(good, source="gw-dkr", seq=9)
    r = ingest(
        gw_db,
        events,
        [
            good,
            {**good, "seq": 2, "kind": "hb\x00"},
            {**good, "seq": 3, "body": {"relay": "\x00"}},
            {**gw, "kind": "session_open", "body": {"session": "node-bs1:1:1\x00", "artisan": 1}},
            {**gw, "seq": 10, "kind": "session_close", "body": {"session": "s", "reason": "tap\x00out"}},
            {**gw, "seq": 11, "kind": "state", "body": {"state": "available", "cause": "\x00"}},
            {**gw, "seq": 12, "kind": "session_open", "body": {"session": "s", "note": "ok\x00"}},  # body only
        ],
    )
    assert r.accepted == 2 and [x.reason for x in r.rejected] == ["unknown_kind"] + ["invalid"] * 4
    details = [d.detail for d in gw_db.scalars(select(DeadLetter).order_by(DeadLetter.id))]
    assert len(details) == 5 and all("\x00" not in d for d in details)
    assert [s.id for s in gw_db.scalars(select(Session))] == ["s"]


def test_hooks_see_new_events_only(gw_db, events, monkeypatch):
    from server import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "_HOOKS", [])
    seen = []

    @ingest_module.on_ingested
    def record(db, done):
        seen.append((done.gateway, done.site, [e["kind"] for e in done.events], sorted(done.machines)))

    events.tap_in("bandsaw-1", "node-bs1", 1, UID_AWA, AWA, T0)
    events.gw("bandsaw-1", "alert", T0 + 1, cause="fault:estop", kind="fault", state="raised", code="estop")
    ingest(gw_db, events)
    ingest(gw_db, events)  # all duplicates: no call
    assert seen == [("gw-dkr", "DKR", ["badge", "decision", "session_open", "state", "alert"], ["bandsaw-1"])]
