"""End to end with metering plugs: simulated Tasmota, Shelly Gen1 and Shelly Gen2 plugs and
badge reader nodes -> a private Mosquitto whose ACLs allow the plugs' own topics -> the gateway
process (plug mapping from CRP_PLUGS_FILE) -> the server process -> the database.

For each plug: badge grant -> the gateway switches the plug on -> the motor's power draw is
seen as running -> tap out -> the plug is switched off; the server's session has the run time
and the energy the plug metered."""

from __future__ import annotations

import datetime as dt
import math
import secrets
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as Db

from crp_cli.broker import BrokerUser, find_mosquitto
from crp_cli.stack import Stack
from crp_common.clock import ScaledClock
from firmware_sim.node import MachineNode
from firmware_sim.plugs import LOAD_W, PluggedMachine, make_plug
from firmware_sim.workshop import load_workshop
from server.models import Session

from tests.conftest import need_service

SPEED = 60.0  # simulated seconds per real second
T = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc).timestamp()
RUN_S = 240.0  # simulated seconds the motor runs
WAIT_S = 20.0  # real seconds to wait for something the gateway does
GEN2_PREFIX = "shellyplusplugs-a8032ab12345"
# (plug id, machine, firmware, device topic, reader machine, badge of a qualified artisan)
PLUGS = [
    ("plug-drill", "drill-press-1", "tasmota", "tasmota_5A9AE8", "reader-drill", "56A4D2BA"),  # Pape
    ("plug-saw", "bandsaw-2", "shelly1", "shellyplug-s-7C87CEB4A2F1", "reader-saw", "A84BBA07"),  # Mamadou
    ("plug-planer", "planer-1", "shelly2", GEN2_PREFIX, "reader-planer", "8B8C764D1C0ACB"),  # Cheikh
]
PLUG_ACL = ["topic readwrite tele/#", "topic readwrite stat/#", "topic readwrite cmnd/#",
            "topic readwrite shellies/#", f"topic readwrite {GEN2_PREFIX}/#", "topic readwrite +/rpc"]


def wait_for(pred: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


@pytest.fixture
def stack(tmp_path: Path, database_url: str):
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")
    s = Stack(tmp_path / "stack", database_url, site="DKR")
    s.users["gateway"].acl.extend(PLUG_ACL)  # the gateway reads and commands the plugs
    plugs_user = BrokerUser("plugs", secrets.token_urlsafe(12), PLUG_ACL)
    s.users["plugs"] = plugs_user
    s.broker.users.append(plugs_user)
    mapping = {"plugs": {pid: {"machine": m, "type": kind, "topic": topic, "threshold_w": 150, "reader": reader}
                         for pid, m, kind, topic, reader, _ in PLUGS}}
    (tmp_path / "plugs.yaml").write_text(yaml.safe_dump(mapping))
    s.gateway_env["CRP_PLUGS_FILE"] = str(tmp_path / "plugs.yaml")
    try:
        s.start_broker()
        s.start_server()
        s.seed(load_workshop())
        s.clock = ScaledClock(real_origin=time.time() + 0.5, sim_origin=T, speed=SPEED)  # type: ignore[attr-defined]
        s.clock_spec = s.clock.spec()  # type: ignore[attr-defined]
        s.gateway_env["CRP_BADGE_MAX_AGE_S"] = str(3 * SPEED)
        s.start_gateway()
        yield s
    finally:
        s.stop()


def sessions(database_url: str) -> list[Session]:
    engine = create_engine(database_url)
    try:
        with Db(engine) as db:
            rows = list(db.scalars(select(Session).order_by(Session.machine)))
            db.expunge_all()
            return rows
    finally:
        engine.dispose()


def test_badge_switches_plugs_and_sessions_get_run_time_and_energy(stack: Stack, tmp_path: Path,
                                                                     database_url: str) -> None:
    clock = stack.clock  # type: ignore[attr-defined]
    host, port = stack.broker.host, stack.broker.port
    puser, ppass = stack.mqtt_creds("plugs")
    suser, spass = stack.mqtt_creds("sim")
    rigs: dict[str, PluggedMachine] = {}
    for pid, machine, kind, topic, reader, _ in PLUGS:
        plug = make_plug(kind, topic, host, port, puser, ppass, clock, client_id=pid)
        node = MachineNode("DKR", reader, f"node-{reader}", host, port, suser, spass, clock, tmp_path / "nodes")
        rigs[pid] = PluggedMachine(plug, node)
    try:
        for rig in rigs.values():
            rig.power_on()
        # The interlock: a plug switched on by hand without a session is switched off again.
        for pid, rig in rigs.items():
            n = len(rig.plug.commands)
            rig.plug.press_button()
            assert rig.plug.relay
            wait_for(lambda: not rig.plug.relay and False in rig.plug.commands[n:], f"{pid} switched back off")
        for pid, machine, _, _, _, uid in PLUGS:
            rig = rigs[pid]
            req, d = rig.tap_and_wait(uid, timeout=5.0)
            assert d is not None and d.result == "grant", (pid, d)
            wait_for(lambda: rig.plug.relay, f"{pid} switched on after the grant")
            assert rig.plug.commands[-1] is True
        ran: dict[str, list[float]] = {}  # simulated start and stop of each motor, as the plug saw them
        for pid, rig in rigs.items():
            ran[pid] = [clock.now()]
            assert rig.motor(True)
        started = clock.now()
        wait_for(lambda: clock.now() >= started + RUN_S, "motor run", timeout=RUN_S / SPEED + 10)
        for pid, rig in rigs.items():
            assert rig.motor(False)
            ran[pid].append(clock.now())
        for pid, machine, _, _, _, uid in PLUGS:
            rig = rigs[pid]
            _, d = rig.tap_and_wait(uid, timeout=5.0)
            assert d is not None and d.result == "end", (pid, d)
            wait_for(lambda: not rig.plug.relay, f"{pid} switched off after the tap out")
            assert rig.plug.commands[-1] is False
        # Closing time: the plugs and readers go off (their periodic reports would otherwise keep
        # the gateway's spool from ever being empty at the moment it reports its status).
        for rig in rigs.values():
            rig.shutdown()
        stack.wait_settled(60, after_ms=clock.now_ms())
    finally:
        for rig in rigs.values():
            rig.shutdown()

    rows = {s.machine: s for s in sessions(database_url)}
    assert set(rows) == {m for _, m, *_ in PLUGS}, sorted(rows)
    for pid, machine, *_ in PLUGS:
        s = rows[machine]
        assert s.end_reason == "tap_out" and not s.open, (machine, s.end_reason)
        # Plugs have no uptime: times are the gateway's receive times (real delivery delays,
        # a few ms, times SPEED).
        run_s = ran[pid][1] - ran[pid][0]
        assert abs(s.run_ms - run_s * 1000) <= 30_000, (machine, s.run_ms, run_s)
        expected_wh = LOAD_W * run_s / 3600  # about 50 Wh, plus a few Wh of idle draw
        assert s.energy_wh is not None and expected_wh * 0.85 <= s.energy_wh <= expected_wh * 1.25, (machine,
                                                                                                     s.energy_wh)

    # Energy on the bill: a card per plug machine's type that also prices the kWh (150 XOF/kWh),
    # time at 1,200 XOF/h in 15-minute steps; every line = time + whole Wh x 150 / 1000, half-up.
    with stack.api() as api:
        for mtype in ("drill_press", "bandsaw", "planer"):
            r = api.post("/api/v1/rate-cards", json={
                "machine_type": mtype, "price_per_hour_member": 1200, "price_per_hour_non_member": 1200,
                "increment_minutes": 15, "minimum_minutes": 15, "effective_from": "2026-01-01",
                "price_per_kwh": 150})
            assert r.status_code == 201, r.text
        r = api.post("/api/v1/billing/run", json={"period": "2026-03"})
        assert r.status_code == 200, r.text
        invoices = r.json()["invoices"] if isinstance(r.json(), dict) else r.json()
    lines = {ln["machine"]: ln for inv in invoices for ln in inv["lines"]}
    assert set(lines) == set(rows)
    for machine, ln in lines.items():
        wh = math.floor(rows[machine].energy_wh + 0.5)
        energy = (wh * 150 * 2 + 1000) // 2000  # half-up
        minutes = max(15, -(-((rows[machine].end_ms - rows[machine].start_ms) // 1000) // 900) * 15)
        assert (ln["energy_wh"], ln["price_per_kwh"], ln["energy_amount"]) == (wh, 150, energy), ln
        assert ln["amount"] == minutes * 1200 // 60 + energy, ln
        assert energy > 0
