"""The gateway <-> server link cut for 72 simulated hours while the workshop works three days.
The gateway decides every badge from its cache, spools everything, and when the link returns
the server gets it all exactly once: the sessions are the ones planned, and every badge decided
offline is what the server's own rule decides with the server's data."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as Db

from crp_cli.broker import find_mosquitto
from crp_cli.stack import Stack
from crp_common.clock import ScaledClock
from crp_common.rules import AuthIndex, MachineLive, decide
from firmware_sim.runner import run_scenario
from firmware_sim.scenario import script
from firmware_sim.workshop import load_workshop
from server.models import Event, Session
from server.snapshot_builder import build_snapshot
from tests.conftest import need_service

SPEED = 14400.0
DAY0 = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc).timestamp()  # Monday 00:00, Dakar = UTC
H = 3600
MAMADOU, MOUSSA, OUSMANE = "A84BBA07", "1DF997D5", "1DB92530"
MACHINES = ["bandsaw-1", "metal-lathe-1"]


def day_actions(d: int) -> list[tuple]:
    t = DAY0 + d * 24 * H
    return [
        # The workshop's mains come on in the morning and go off at night (nodes boot, and die).
        (t + 8 * H, None, "power_restore", {"machines": MACHINES}),
        (t + 9 * H, "bandsaw-1", "tap", {"uid": MAMADOU}),
        (t + 9 * H + 60, "bandsaw-1", "work", {"cycles": [[600, 300], [900, 0]]}),
        (t + 9 * H + 40 * 60, "bandsaw-1", "tap_out", {"uid": MAMADOU}),
        (t + 10 * H, "metal-lathe-1", "tap", {"uid": OUSMANE}),  # not qualified
        (t + 10 * H + 120, "metal-lathe-1", "tap", {"uid": MOUSSA}),
        (t + 10 * H + 180, "metal-lathe-1", "work", {"cycles": [[1500, 0]]}),
        (t + 10 * H + 40 * 60, "metal-lathe-1", "walk_away", {}),
        (t + 18 * H, None, "power_cut", {"machines": MACHINES}),
    ]


@pytest.mark.faults
@pytest.mark.slow
def test_three_days_without_the_server(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")
    workshop = load_workshop()
    db_url = f"sqlite:///{tmp_path / 'crp.db'}"
    stack = Stack(tmp_path, db_url)
    try:
        stack.start_broker()
        stack.start_server()
        ids = stack.seed(workshop)
        clock = ScaledClock(real_origin=time.time() + 1.0, sim_origin=DAY0 + 7 * H, speed=SPEED)
        stack.clock_spec = clock.spec()
        stack.gateway_env.update({"CRP_BADGE_MAX_AGE_S": str(3 * SPEED), "CRP_OFFLINE_AFTER_S": "3600"})
        stack.start_gateway()
        # The link goes down before the first day starts and stays down 72 simulated hours.
        stack.server.kill9()
        actions = [a for d in range(3) for a in day_actions(d)]
        actions = [a for a in actions if a[2] != "power_restore" or a[0] > DAY0 + 8 * H]  # nodes boot at start
        report = run_scenario(script(actions), workshop, stack.broker.host, stack.broker.port,
                              *stack.mqtt_creds("sim"), clock, tmp_path / "nodes", machines=MACHINES)
        assert report.timeouts == 0 and report.denies == {"not_qualified": 3}
        assert stack.gw_status.latest.get("server") is False and stack.gw_status.latest.get("pending", 0) > 0
        while clock.now() < DAY0 + 7 * H + 72 * H:
            time.sleep(0.05)
        stack.start_server()
        stack.wait_settled(120, after_ms=clock.now_ms())
    finally:
        stack.stop()

    engine = create_engine(db_url)
    try:
        with Db(engine) as db:
            sessions = list(db.scalars(select(Session).order_by(Session.start_ms)))
            got = [(s.machine, s.artisan, s.end_ms - s.start_ms, s.run_ms, s.end_reason) for s in sessions]
            mamadou = ids[workshop.badge_owner(MAMADOU).id]
            moussa = ids[workshop.badge_owner(MOUSSA).id]
            one_day = [("bandsaw-1", mamadou, 40 * 60_000, 25 * 60_000, "tap_out"),
                       # idle: last motor stop at 10:00 + 28 min, lathe idle timeout 15 min
                       ("metal-lathe-1", moussa, (180 + 1500 + 900 - 120) * 1000, 1500 * 1000, "idle")]
            assert got == one_day * 3
            # Every decision taken offline, re-decided by the server's rule on the server's data.
            snap = AuthIndex.of(build_snapshot(db, "DKR", int(time.time() * 1000)))
            decisions = db.scalars(select(Event).where(Event.kind == "decision").order_by(Event.t_ms)).all()
            assert len(decisions) == 4 * 3  # grant + tap out on the bandsaw, deny + grant on the lathe
            for e in decisions:
                # The session running at the tap (a tap out happens at its end instant).
                open_s = [s for s in sessions if s.machine == e.machine and s.start_ms < e.t_ms <= (s.end_ms or 2**62)]
                motor = db.scalars(select(Event).where(Event.machine == e.machine, Event.kind == "motor",
                                                       Event.t_ms <= e.t_ms).order_by(Event.t_ms.desc())).first()
                live = MachineLive(session_artisan=open_s[0].artisan if open_s else None,
                                   motor_running=bool(motor and motor.body.get("running")))
                day = dt.datetime.fromtimestamp(e.t_ms / 1000, dt.timezone.utc).date()
                d = decide(snap, e.machine, e.body["uid"], live, day)
                assert (d.result, d.reason) == (e.body["result"], e.body["reason"]), e.body
            # Nothing twice: every node event once.
            keys = db.execute(select(Event.source, Event.boot, Event.seq)).all()
            assert len(keys) == len(set(keys))
    finally:
        engine.dispose()
