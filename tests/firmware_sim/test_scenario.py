"""The scenario generator: deterministic, inside opening hours, and every required case present.

The strongest check replays each generated day through the real decision rule
(crp_common.rules.decide) with a small model of the gateway's live state, and requires every
tap to get the outcome the scenario planned for it."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pytest

from crp_common.rules import AuthIndex, MachineLive, decide
from firmware_sim import scenario
from firmware_sim.scenario import Action, Op, ScenarioError, day_bounds, generate_day, near_billing_step, script, work_events
from firmware_sim.workshop import load_workshop

DAY = dt.date(2025, 3, 12)
SEEDS = (1, 2, 3, 7, 42)


@pytest.fixture(scope="module")
def ws():
    return load_workshop()


@pytest.fixture(scope="module")
def days(ws):
    return {seed: generate_day(ws, DAY, seed) for seed in SEEDS}


# --------------------------------------------------------------------------- a model gateway


@dataclass
class Live:
    session: int | None = None
    start: float = 0.0
    motor: bool = False
    last_activity: float = 0.0
    fault: bool = False
    powered: bool = True


@dataclass
class Replay:
    decisions: list[tuple[Action, object, Live]] = field(default_factory=list)
    # machine, artisan, start, end, why, last time the artisan was at the machine
    sessions: list[tuple[str, int, float, float, str, float]] = field(default_factory=list)
    skipped_taps: list[Action] = field(default_factory=list)


def replay(ws, actions: list[Action], day: dt.date) -> Replay:
    idx = AuthIndex.of(ws.snapshot())
    idle = {m.id: ws.idle_timeout_s(m.id) for m in ws.machines}
    events: list[tuple[float, int, str, str, object]] = []
    for a in actions:
        if a.op in (Op.TAP, Op.TAP_OUT):
            events.append((a.at, 2, "tap", a.machine, a))
        elif a.op == Op.WORK:
            for t, on in work_events(a.at, a.args["cycles"]):
                events.append((t, 1, "motor", a.machine, on))
        elif a.op in (Op.POWER_CUT, Op.POWER_RESTORE):
            for m in a.args["machines"]:
                events.append((a.at, 0, a.op, m, None))
        elif a.op == Op.FAULT:
            events.append((a.at, 1, "fault", a.machine, a.args["active"]))
    events.sort(key=lambda e: (e[0], e[1]))
    live = defaultdict(Live)
    out = Replay()

    def close(m: str, end: float, why: str) -> None:
        s = live[m]
        out.sessions.append((m, s.session, s.start, end, why, s.last_activity if why == "idle" else end))
        s.session, s.motor = None, False

    def expire(now: float) -> None:
        for m, s in live.items():
            if s.session is not None and not s.motor and s.last_activity + idle[m] <= now:
                close(m, s.last_activity + idle[m], "idle")

    for t, _, kind, m, data in events:
        expire(t)
        s = live[m]
        if kind == "tap":
            if not s.powered:
                out.skipped_taps.append(data)
                continue
            d = decide(idx, m, data.args["uid"], MachineLive(s.session, s.motor, s.fault), day)
            out.decisions.append((data, d, Live(s.session, s.start, s.motor, s.last_activity, s.fault)))
            if d.result == "grant":
                if s.session is not None:
                    close(m, t, "handover")
                s.session, s.start, s.last_activity = d.artisan.id, t, t
            elif d.result == "end":
                close(m, t, "tap_out")
        elif kind == "motor":
            if s.powered and s.session is not None and not s.fault:
                s.motor = data
                s.last_activity = t
        elif kind == Op.POWER_CUT:
            if s.session is not None:
                close(m, t, "power_loss")
            s.powered, s.motor = False, False
        elif kind == Op.POWER_RESTORE:
            s.powered = True
        elif kind == "fault":
            assert s.session is None, "faults are planned on idle machines"
            s.fault = data
    expire(float("inf"))
    return out


# --------------------------------------------------------------------------- tests


def test_same_seed_same_day_and_other_seeds_differ(ws, days):
    assert generate_day(ws, DAY, 7) == days[7]
    assert days[1] != days[2]
    assert generate_day(ws, DAY + dt.timedelta(days=1), 7) != days[7]


def test_every_action_is_within_opening_hours(ws, days):
    open_ts, close_ts = day_bounds(DAY, ws.site.tz)
    tz = ZoneInfo(ws.site.tz)
    assert dt.datetime.fromtimestamp(open_ts, tz).time() == dt.time(7, 30)
    for acts in days.values():
        assert acts == sorted(acts, key=lambda a: a.at)
        for a in acts:
            assert open_ts <= a.at <= close_ts, a
            if a.op == Op.WORK:
                assert max(t for t, _ in work_events(a.at, a.args["cycles"])) <= close_ts


@pytest.mark.parametrize("seed", SEEDS)
def test_every_tap_gets_the_outcome_the_scenario_planned(ws, days, seed):
    r = replay(ws, days[seed], DAY)
    assert r.decisions and not r.skipped_taps
    for a, d, _ in r.decisions:
        assert d.result == a.args["expect"], (a, d)
        if d.result == "deny":
            assert d.reason == a.args["reason"], (a, d)
        if d.result == "grant":
            assert (d.reason == "handover") == (a.args["reason"] == "handover"), (a, d)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_day_contains_every_required_case(ws, days, seed):
    acts = days[seed]
    r = replay(ws, acts, DAY)
    denied = {d.reason for _, d, _ in r.decisions if d.result == "deny"}
    assert {"unknown_badge", "not_qualified", "artisan_suspended", "badge_revoked", "machine_in_use",
            "qualification_expired"} <= denied
    # The unknown badge really is unknown, the suspended artisan really is suspended.
    uids = {b.uid for a in ws.artisans for b in a.badges}
    for a, d, live in r.decisions:
        if d.reason == "unknown_badge":
            assert a.args["uid"] not in uids
        if d.reason == "artisan_suspended":
            assert ws.badge_owner(a.args["uid"]).status == "suspended"
        if d.reason == "machine_in_use":  # someone else's session with the motor running
            assert live.motor and live.session not in (None, d.artisan.id)
    handovers = [(a, live) for a, d, live in r.decisions if d.result == "grant" and d.reason == "handover"]
    assert handovers and all(not live.motor for _, live in handovers)
    whys = [s[4] for s in r.sessions]
    assert {"tap_out", "idle", "handover", "power_loss"} <= set(whys)
    assert sum(1 for a in acts if a.op == Op.OVERHEAT) == 1
    assert {a.args["active"] for a in acts if a.op == Op.FAULT} == {True, False}


@pytest.mark.parametrize("seed", SEEDS)
def test_plug_machines_get_sessions_but_no_node_only_case(ws, days, seed):
    plugged = {m.id for m in ws.plug_machines}
    acts = [a for a in days[seed] if a.machine in plugged]
    assert {a.machine for a in acts if a.op == Op.WORK} == plugged  # every plug machine is used
    assert not [a for a in acts if a.op in (Op.FAULT, Op.OVERHEAT, Op.SILENCE)]


@pytest.mark.parametrize("seed", SEEDS)
def test_power_cut_drops_three_nodes_for_about_twenty_minutes_at_midday(ws, days, seed):
    acts = days[seed]
    cuts = [a for a in acts if a.op == Op.POWER_CUT]
    restores = [a for a in acts if a.op == Op.POWER_RESTORE]
    assert len(cuts) == len(restores) == 1
    cut, restore = cuts[0], restores[0]
    machines = cut.args["machines"]
    assert len(set(machines)) == 3 and restore.args["machines"] == machines
    assert 18 * 60 <= restore.at - cut.at <= 22 * 60
    local = dt.datetime.fromtimestamp(cut.at, ZoneInfo(ws.site.tz)).time()
    assert dt.time(11, 0) <= local <= dt.time(15, 0)
    # Nothing is planned on a dead machine; motor events of a block cut short are after the cut.
    for a in acts:
        if a.machine in machines and cut.at <= a.at <= restore.at:
            raise AssertionError(f"action on a machine without power: {a}")


@pytest.mark.parametrize("seed", SEEDS)
def test_sessions_are_consistent_and_avoid_billing_steps(ws, days, seed):
    r = replay(ws, days[seed], DAY)
    open_ts, close_ts = day_bounds(DAY, ws.site.tz)
    by_artisan: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for m, artisan, start, end, why, present in r.sessions:
        assert open_ts <= start and end <= close_ts - scenario.CLOSING_MARGIN_S
        by_artisan[artisan].append((start, present))
        if why != "power_loss":  # a power loss closes at the node's last sign of life
            assert not near_billing_step(end - start), (m, artisan, end - start, why)
    for artisan, spans in by_artisan.items():
        spans.sort()
        for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
            assert s2 >= e1, f"artisan {artisan} on two machines at once"


def test_script_orders_and_checks_actions():
    acts = script([(200, "bandsaw-1", "tap_out", {"uid": "04A1B2C3"}),
                   {"at": 100, "machine": "bandsaw-1", "op": "tap", "args": {"uid": "04A1B2C3"}},
                   (150, None, "power_cut", {"machines": ["bandsaw-1"]})])
    assert [a.op for a in acts] == ["tap", "power_cut", "tap_out"]
    with pytest.raises(ScenarioError, match="unknown op"):
        script([(1, "bandsaw-1", "dance")])
    with pytest.raises(ScenarioError, match="uid"):
        script([(1, "bandsaw-1", "tap")])
    with pytest.raises(ScenarioError, match="machines"):
        script([(1, None, "power_cut")])


def test_without_machines_keeps_the_same_day_for_the_others(ws, days):
    acts = days[1]
    plugged = [m.id for m in ws.plug_machines]
    left = scenario.without_machines(acts, plugged)
    assert [a for a in acts if a.op not in (Op.POWER_CUT, Op.POWER_RESTORE) and a.machine not in plugged] == [
        a for a in left if a.op not in (Op.POWER_CUT, Op.POWER_RESTORE)]
    for a in left:
        assert not set(a.machines()) & set(plugged)
    scenario.check_machines(left, ws.without_plugs())
    cut = Action(1.0, None, Op.POWER_CUT, {"machines": [plugged[0]]})
    assert scenario.without_machines([cut], plugged) == []


def test_check_machines_rejects_unknown_machines(ws):
    with pytest.raises(ScenarioError, match="unknown machine"):
        scenario.check_machines([Action(1.0, "jigsaw-9", Op.TAP, {"uid": "04A1B2C3"})], ws)


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_every_day_has_every_required_case(seed):
    """Issues 2 and 4 need each demo day to show these; a planner that drops one when the
    machine is busy would make the demo miss it on some dates."""
    import datetime as _dt

    from firmware_sim.scenario import generate_day as _gen
    from firmware_sim.workshop import load_workshop as _load

    w = _load()
    for i in range(0, 365, 17):
        day = _dt.date(2026, 1, 1) + _dt.timedelta(days=i)
        acts = _gen(w, day, seed)
        ops = {a.op for a in acts}
        reasons = {a.args.get("reason") for a in acts if a.op == "tap" and a.args.get("expect") == "deny"}
        assert {"overheat", "fault", "walk_away", "power_cut", "power_restore"} <= ops, day
        # The cases the issues name; the rarer ones (expired qualification on the only lathe,
        # machine in use) depend on who is free that day.
        assert {"unknown_badge", "not_qualified", "artisan_suspended", "badge_revoked"} <= reasons, (day, reasons)
