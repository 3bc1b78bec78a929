"""End to end with real parts: simulated nodes -> private Mosquitto -> gateway process ->
server process -> SQLite / PostgreSQL, on one accelerated clock.

A scripted scenario whose sessions are known exactly (computed by hand below), played
fault-free, with the gateway killed (-9) and the server stopped mid-stream, and replayed."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import create_engine, select

from crp_cli.broker import find_mosquitto
from crp_cli.demo import _seed_extras
from crp_cli.stack import Stack, crp_cmd
from crp_common.clock import ScaledClock
from firmware_sim.runner import run_scenario
from firmware_sim.scenario import script
from firmware_sim.workshop import load_workshop
from server.models import Event, Session

from tests.conftest import need_service
from tests.e2e.pg import kill_db_connections

SPEED = 300.0  # simulated seconds per real second
DAY = dt.date(2026, 3, 2)  # a Monday; Dakar is UTC+0
T = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc).timestamp()  # 08:00 local
MIN = 60


def at(s: float) -> float:
    return T + s


# Badges of the demo workshop (firmware_sim/workshops/demo.json).
MAMADOU, CHEIKH, BABACAR, PAPE = "A84BBA07", "8B8C764D1C0ACB", "EEC12975", "56A4D2BA"
MOUSSA, ADAMA, SEYDOU_EXPIRED = "1DF997D5", "75DCB6DE", "B4AB7ED013E501"
ALIOU_SUSPENDED, OUSMANE, AWA, LAMINE, KHADY = "32050D09", "1DB92530", "7FA42F93", "960E9558", "F4590641"
REVOKED, UNKNOWN = "60A077BB", "DEADBEEF"

ACTIONS = script([
    # bandsaw-1: Mamadou taps in, motor 4 min + 3 min, taps out after 12 min.
    (at(0), "bandsaw-1", "tap", {"uid": MAMADOU}),
    (at(60), "bandsaw-1", "work", {"cycles": [[240, 120], [180, 0]]}),
    (at(720), "bandsaw-1", "tap_out", {"uid": MAMADOU}),
    # metal-lathe-1: Moussa runs the motor 18 min and walks away: idle timeout (15 min).
    (at(0), "metal-lathe-1", "tap", {"uid": MOUSSA}),
    (at(120), "metal-lathe-1", "work", {"cycles": [[1080, 0]]}),
    (at(1260), "metal-lathe-1", "walk_away", {}),
    (at(300), "metal-lathe-1", "tap", {"uid": SEYDOU_EXPIRED}),  # qualification expired
    (at(600), "metal-lathe-1", "tap", {"uid": ADAMA}),  # motor running: machine in use
    # planer-1: Cheikh works 9 min; Babacar takes over the idle machine at 12 min.
    (at(0), "planer-1", "tap", {"uid": CHEIKH}),
    (at(60), "planer-1", "work", {"cycles": [[540, 0]]}),
    (at(720), "planer-1", "tap", {"uid": BABACAR}),
    (at(780), "planer-1", "work", {"cycles": [[300, 0]]}),
    (at(1200), "planer-1", "tap_out", {"uid": BABACAR}),
    # drill-press-1: Pape works; the node loses power at 10 min and comes back at 25 min.
    (at(0), "drill-press-1", "tap", {"uid": PAPE}),
    (at(30), "drill-press-1", "work", {"cycles": [[1200, 0]]}),
    (at(600), None, "power_cut", {"machines": ["drill-press-1"]}),
    (at(1500), None, "power_restore", {"machines": ["drill-press-1"]}),
    # Every other deny reason.
    (at(60), "bandsaw-2", "tap", {"uid": UNKNOWN}),
    (at(120), "bandsaw-2", "tap", {"uid": REVOKED}),
    (at(60), "arc-welder-1", "tap", {"uid": ALIOU_SUSPENDED}),
    (at(60), "sewing-machine-1", "tap", {"uid": OUSMANE}),  # not qualified
    (at(60), "sewing-machine-2", "tap", {"uid": AWA}),  # machine locked for maintenance
    # Machine faulted: the gateway refuses at once (the server then also locks the machine for
    # the technician, and later taps would say machine_locked).
    (at(30), "arc-welder-2", "fault", {"code": "estop", "active": True}),
    (at(31), "arc-welder-2", "tap", {"uid": LAMINE}),
    (at(60), "sewing-machine-3", "tap", {"uid": KHADY}),  # prepaid credit exhausted
])

# (machine, artisan badge, start offset s, end offset s, run s, end reason), by hand from above.
EXPECTED = [
    ("bandsaw-1", MAMADOU, 0, 720, 420, "tap_out"),
    ("metal-lathe-1", MOUSSA, 0, 1200 + 900, 1080, "idle"),
    ("planer-1", CHEIKH, 0, 720, 540, "handover"),
    ("planer-1", BABACAR, 720, 1200, 300, "tap_out"),
]
EXPECTED_DENIED = {r: 1 for r in ("unknown_badge", "badge_revoked", "artisan_suspended", "not_qualified",
                                  "machine_locked", "machine_fault", "credit_limit", "qualification_expired",
                                  "machine_in_use")}


@pytest.fixture(autouse=True)
def _needs_mosquitto() -> None:
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")


class Run:
    """One workshop stack with the demo workshop registered and the scenario's preconditions."""

    def __init__(self, workdir: Path, database_url: str):
        self.workshop = load_workshop()
        self.stack = Stack(workdir, database_url, site="DKR")
        self.database_url = database_url
        self.workdir = workdir
        self.recorded: list[tuple[str, bytes, int, bool]] = []
        self.ids: dict[int, int] = {}

    def start(self) -> "Run":
        s = self.stack
        s.start_broker()
        s.start_server()
        self.ids = s.seed(self.workshop)
        _seed_extras(s, self.workshop)
        with s.api() as api:
            r = api.patch("/api/v1/machines/sewing-machine-2", json={"locked": True, "lock_reason": "courroie"})
            assert r.status_code == 200, r.text
            khady = self.ids[self.workshop.badge_owner(KHADY).id]
            r = api.put(f"/api/v1/artisans/{khady}/credit-account", json={"prepaid": True, "credit_limit": None})
            assert r.status_code == 200, r.text
        self.clock = ScaledClock(real_origin=time.time() + 1.0, sim_origin=T - 90, speed=SPEED)
        s.clock_spec = self.clock.spec()
        s.gateway_env["CRP_BADGE_MAX_AGE_S"] = str(3 * SPEED)  # the nodes wait 3 real seconds
        s.start_gateway()
        return self

    def record_node_messages(self) -> None:
        user, password = self.stack.mqtt_creds("monitor")
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="recorder", protocol=mqtt.MQTTv311)
        c.username_pw_set(user, password)
        c.on_connect = lambda cl, *_: cl.subscribe("crp/v1/DKR/+/+", qos=1)

        def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
            if not m.topic.endswith(("/decision", "/cmd")):
                self.recorded.append((m.topic, bytes(m.payload), m.qos, bool(m.retain)))

        c.on_message = on_message
        c.connect(self.stack.broker.host, self.stack.broker.port)
        c.loop_start()
        self._recorder = c

    def play(self) -> Any:
        user, password = self.stack.mqtt_creds("sim")
        report = run_scenario(ACTIONS, self.workshop, self.stack.broker.host, self.stack.broker.port, user,
                              password, self.clock, self.workdir / "nodes")
        self.stack.wait_settled(90, after_ms=self.clock.now_ms())
        return report

    def sessions(self) -> list[Session]:
        engine = create_engine(self.database_url)
        try:
            from sqlalchemy.orm import Session as Db

            with Db(engine) as db:
                rows = list(db.scalars(select(Session).order_by(Session.machine, Session.start_ms)))
                db.expunge_all()
                return rows
        finally:
            engine.dispose()

    def event_count(self) -> int:
        """Events in the server's log, apart from gateway start-ups (a restart is a new fact)."""
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as c:
                return len(c.execute(select(Event.id).where(Event.kind != "gateway_start")).all())
        finally:
            engine.dispose()

    def stop_recording(self) -> None:
        if getattr(self, "_recorder", None) is not None:
            self._recorder.disconnect()
            self._recorder.loop_stop()
            self._recorder = None

    def stop(self) -> None:
        self.stop_recording()
        self.stack.stop()


@pytest.fixture
def run(tmp_path: Path, database_url: str):
    r = Run(tmp_path, database_url)
    try:
        yield r.start()
    finally:
        r.stop()


def artisan_of(run: Run, uid: str) -> int:
    return run.ids[run.workshop.badge_owner(uid).id]


def check_sessions(run: Run) -> None:
    sessions = run.sessions()
    by_key = {(s.machine, s.artisan, s.end_reason): s for s in sessions}
    assert len(sessions) == len(EXPECTED) + 1, [(s.machine, s.artisan, s.end_reason) for s in sessions]
    starts = []
    for machine, uid, start, end, run_s, reason in EXPECTED:
        s = by_key[(machine, artisan_of(run, uid), reason)]
        assert s.end_ms - s.start_ms == (end - start) * 1000, machine
        assert s.run_ms == run_s * 1000, machine
        starts.append(s.start_ms - (T + start) * 1000)
    # Absolute times come from the gateway's anchor of each node's boot (receive time minus
    # uptime of its first message): late by that message's transit, under 30 ms real (9 s).
    assert all(0 <= d < 30 * SPEED for d in starts), starts
    # The power cut: closed at the node's last sign of life before the cut, not at the reboot.
    drill = by_key[("drill-press-1", artisan_of(run, PAPE), "power_loss")]
    # The last current sample (every 10 s while the motor runs) before the cut at 600 s.
    assert 590_000 <= drill.end_ms - drill.start_ms <= 600_000
    assert drill.run_ms == drill.end_ms - drill.start_ms - 30_000


def check_denials(run: Run) -> None:
    with run.stack.api() as api:
        r = api.get("/api/v1/denials")
        assert r.status_code == 200, r.text
        assert r.json() == EXPECTED_DENIED


def check_billing(run: Run) -> None:
    with run.stack.api() as api:
        r = api.post("/api/v1/billing/run", json={"period": "2026-03"})
        assert r.status_code == 200, r.text
        invoices = r.json()["invoices"] if isinstance(r.json(), dict) else r.json()
    # Mamadou bills to his cooperative (GIE-BOIS), Moussa to his (COOP-SOUD): lines name the artisan.
    lines = {ln["machine"]: ln for inv in invoices for ln in inv["lines"]
             if ln["artisan_id"] in (artisan_of(run, MAMADOU), artisan_of(run, MOUSSA))}
    assert {inv["bill_to_name"] for inv in invoices if any(ln["machine"] == "bandsaw-1" for ln in inv["lines"])} \
        == {"GIE-BOIS"}
    # The brief's example on real data: 12 min at 2,000 XOF/h in 15-minute steps, rounded up.
    assert (lines["bandsaw-1"]["billed_minutes"], lines["bandsaw-1"]["amount"]) == (15, 500)
    # 35 min on the lathe (3,000 XOF/h, 30 min minimum): 45 min = 2,250 XOF.
    assert (lines["metal-lathe-1"]["billed_minutes"], lines["metal-lathe-1"]["amount"]) == (45, 2250)
    # Every closed session is on exactly one invoice, and the totals add up to the franc.
    billed = [ln["session_id"] for inv in invoices for ln in inv["lines"]]
    assert sorted(billed) == sorted(x.id for x in run.sessions() if x.end_ms is not None)
    assert sum(inv["total"] for inv in invoices) == sum(ln["amount"] for inv in invoices for ln in inv["lines"]) \
        + sum(inv["tax"] for inv in invoices)
    # By hand (members' prices unless noted, 15-minute steps rounded up, no tax): bandsaw 12 min
    # -> 500; lathe 35 min -> 2,250; planer 12 min -> 500; planer 8 min at the non-member rate
    # (2,500/h) -> 625; drill press ~10 min (1,000/h) -> 250. Total 4,125 XOF.
    assert sum(inv["total"] for inv in invoices) == 4125


def test_scripted_day_gives_exact_sessions_and_bills_them(run: Run) -> None:
    report = run.play()
    assert report.timeouts == 0
    check_sessions(run)
    check_denials(run)
    check_billing(run)


@pytest.mark.faults
def test_broker_gateway_and_server_kill9_lose_nothing(run: Run) -> None:
    s = run.stack
    done = threading.Event()
    log: list[str] = []

    def chaos() -> None:
        # Times in simulated seconds after 08:00, converted to real time on the shared clock.
        def wait_until(offset: float) -> None:
            while not done.is_set() and run.clock.now() < T + offset:
                time.sleep(0.01)

        # The broker dies as in a power cut and comes back on its persistence file (saved every
        # second); nodes and gateway reconnect by themselves.
        wait_until(800)
        s.broker.kill()
        log.append("broker killed")
        time.sleep(0.5)
        s.broker.start()
        log.append("broker restarted")
        wait_until(1000)
        s.gateway.kill9()
        log.append("gateway killed")
        time.sleep(1.0)
        s.start_gateway(wait_cache=False)
        log.append("gateway restarted")
        if run.database_url.startswith("postgresql"):
            # The database drops every connection of the server (a restart, a network blip);
            # only the server's: other tests may share the database.
            wait_until(1300)
            assert kill_db_connections(run.database_url, s.server.proc.pid) >= 1
            log.append("database connections killed")
        wait_until(1450)
        s.server.kill9()
        log.append("server killed")
        wait_until(1900)
        s.start_server()
        log.append("server restarted")

    th = threading.Thread(target=chaos, daemon=True)
    th.start()
    try:
        report = run.play()
    finally:
        done.set()
        th.join(30)
    db_kill = ["database connections killed"] if run.database_url.startswith("postgresql") else []
    assert log == ["broker killed", "broker restarted", "gateway killed", "gateway restarted", *db_kill,
                   "server killed", "server restarted"]
    assert report.timeouts == 0
    check_sessions(run)
    check_denials(run)


def test_replays_are_counted_once(run: Run) -> None:
    run.record_node_messages()
    run.play()
    run.stop_recording()
    events = run.event_count()
    before = [(x.id, x.start_ms, x.end_ms, x.run_ms, x.end_reason) for x in run.sessions()]
    assert events > 100 and run.recorded
    # 1. The gateway forgets what it forwarded (as after restoring an old backup): it sends
    #    everything again; the server counts duplicates and changes nothing.
    s = run.stack
    s.gateway.stop()
    import sqlite3

    db = sqlite3.connect(s.workdir / "gateway" / "gateway.db")
    db.execute("UPDATE spool SET forwarded = 0")
    db.commit()
    db.close()
    s.start_gateway()
    s.wait_settled(60, after_ms=run.clock.now_ms())
    # 2. Every node message published again on the broker (a node replaying its flash).
    user, password = s.mqtt_creds("sim")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="replayer", protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    c.max_inflight_messages_set(1000)
    c.connect(s.broker.host, s.broker.port)
    c.loop_start()
    infos = [c.publish(topic, payload, qos=1, retain=retain) for topic, payload, _, retain in run.recorded]
    deadline = time.monotonic() + 60
    while not all(i.is_published() for i in infos) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(i.is_published() for i in infos)
    c.disconnect()
    c.loop_stop()
    s.wait_settled(60, after_ms=run.clock.now_ms() + 5000)
    assert run.event_count() == events
    assert [(x.id, x.start_ms, x.end_ms, x.run_ms, x.end_reason) for x in run.sessions()] == before
    status = json.loads(subprocess.run(crp_cmd("gateway", "status", "--data-dir", str(s.workdir / "gateway")),
                                       capture_output=True, text=True, check=True).stdout)
    assert status["counters"]["duplicate"] >= len(run.recorded) - 20  # a few QoS 0 samples may be new
    assert status["pending"] == 0


BAD_INPUT = [
    ("crp/v1/DKR/bandsaw-1/badge", b"{not json", "not_json"),
    ("crp/v1/DKR/bandsaw-1/smell", b'{"v":1}', "unknown_kind"),
    ("crp/v1/DKR/bandsaw-1/temp",
     b'{"v":1,"node":"node-bandsaw-1","boot":1,"seq":9000,"up":1,"c":"hot"}', "invalid"),
    ("crp/v1/DKR/bandsaw-1/temp",
     b'{"v":1,"node":"node-bandsaw-1","boot":1,"seq":9001,"up":1,"c":900}', "invalid"),
    ("crp/v1/DKR/bandsaw-1/badge",
     b'{"v":1,"node":"node-bandsaw-1","boot":1,"seq":9002,"up":1,"uid":"XYZ"}', "invalid"),
    ("crp/v1/DKR/bandsaw-1/badge", b"\xff\xfe\x00", "not_utf8"),
    ("crp/v1/DKR/bandsaw-1/hb",
     b'{"v":1,"node":"node-planer-1","boot":1,"seq":5,"up":1,"relay":false,"motor":false}', "node_mismatch"),
]


def test_bad_input_is_dead_lettered_and_the_gateway_keeps_running(run: Run) -> None:
    s = run.stack
    user, password = s.mqtt_creds("sim")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="vandal", protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    c.connect(s.broker.host, s.broker.port)
    c.loop_start()
    for topic, payload, _ in BAD_INPUT:
        c.publish(topic, payload, qos=1).wait_for_publish(5)
    # A node whose wall clock is six years off: accepted, stamped on the gateway's clock, skew kept.
    skewed = {"v": 1, "node": "node-bandsaw-2", "boot": 77, "seq": 1, "up": 5000, "state": "online",
              "ts": run.clock.now() - 6 * 365 * 86400}
    sent_ms = run.clock.now_ms()
    c.publish("crp/v1/DKR/bandsaw-2/status", json.dumps(skewed), qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()
    settled = s.wait_settled(30, after_ms=run.clock.now_ms() + 2000, open_sessions=None)
    dead = json.loads(subprocess.run(crp_cmd("gateway", "dead-letters", "--data-dir", str(s.workdir / "gateway")),
                                     capture_output=True, text=True, check=True).stdout)
    expected: dict[str, int] = {}
    for _, _, reason in BAD_INPUT:
        expected[reason] = expected.get(reason, 0) + 1
    assert dead["counts"] == expected
    assert {d["reason"] for d in dead["latest"]} == set(expected)
    assert s.gateway.alive()
    engine = create_engine(run.database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(Event.t_ms, Event.skew_ms).where(Event.source == "node-bandsaw-2",
                                                                       Event.boot == 77)).one()
    finally:
        engine.dispose()
    assert sent_ms <= row.t_ms <= settled["now"]  # stamped when received, not six years ago
    assert row.skew_ms < -5 * 365 * 86400 * 1000
