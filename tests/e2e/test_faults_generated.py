"""Fault injection on GENERATED days, each compared with a fault-free run of the same days
(issue #9, item 2). Real parts: private Mosquitto, gateway and server processes, SQLite or
PostgreSQL; the simulated nodes of firmware_sim.

The days: ``generate_day`` (seed SEED) on the demo workshop restricted to its 12 custom-node
machines (MACHINES; plug-powered machines are left out, so the days do not change when plugs
are added). Each action list is played twice on fresh stacks, every part on one accelerated
clock, and the outcomes are compared.

1. ``test_generated_day_with_faults_equals_the_fault_free_run``: the day from opening (07:30),
   each machine cut at its first block starting at or after WINDOW_END (10:00), so every
   session played ends as planned (the last ends near 11:35); SPEED 400. Chaos: the server is
   killed (-9) at 08:00 and comes back at 09:55 (every badge in between decided offline from
   the gateway's cache, every event spooled); meanwhile the broker is killed (-9) and restarted
   on its persistence file, then the gateway is killed (-9) in full stream, with thousands of
   unforwarded events in its spool and a write batch under way (the broker redelivers what was
   not acknowledged: the gateway's ``duplicate`` counter shows it), and restarted; on
   PostgreSQL every connection of the server process to the database is then terminated
   (pg_terminate_backend, this server's backends only). It runs on one backend: PostgreSQL
   when TEST_POSTGRES_URL is set, else SQLite (two plays of the day are most of the file's time).

   Kill moments are computed, not guessed: :func:`quiet_windows` finds in the action list the
   stretches with no tap, no idle deadline of a walk-away, no power cut or restore and no
   fault; the broker and the gateway are killed QUIET_MARGIN_S after the start of the two
   longest (seed 7: 08:05-08:25 and 09:29-09:52). In such a stretch nothing an outage delays
   can change an outcome: no node waits for an answer (a tap during an outage may time out on
   the node, whose relay then stays off), no session ends on the gateway's clock, no node boots
   (a boot's first message anchors its uptime on the gateway's clock). The test fails, saying
   so, if an outage outlasts its window. The server outage needs no window (the gateway decides
   alone) and no critical fault happens before WINDOW_END, so no server-side lock can reach the
   gateway at a different moment in the two runs.

2. ``test_72_hours_without_the_server_equals_the_connected_run`` (SQLite): the first block of
   four machines on the first and third generated days, at CUT_SPEED; the server is killed
   before the first day and started again 72 simulated hours later. At night the workshop and
   its gateway are switched off (a clean stop: the spool keeps everything) and simulated time
   jumps to the next morning; on the third day the gateway decides from a two-day-old cache.

Compared between the two runs, exactly:

- sessions: machine, artisan, badge, start (as the planned time of the tap that opened it),
  duration, run time, end reason. Absolute start times differ by the transit time of each
  node boot's first message (the gateway's anchor), a few simulated seconds;
- invoices after a billing run of the month: per bill-to, every line (machine, artisan, billed
  minutes, amount), subtotal, tax and total, and the grand total, to the franc;
- gateway decisions: machine, badge, result, reason, artisan, planned time of the request;
- node messages, recorded at the source (RecordingNode): the action-driven ones (badge, motor,
  relay, fault, current) are the same, in the same order, at the same planned times.

And in each run: no event key ``(source, boot, seq)`` twice; every message a node published is
in the server exactly once, stamped at its planned time plus one constant per node boot, plus
one Last Will per node boot; the only messages allowed missing are QoS 0 samples ("at most
once" by contract) sent while the broker was dead or received by the gateway but not yet
written when it was killed; every decision of the day (all those taken while the server was
down included) equals ``crp_common.rules.decide`` on the server's own snapshot.

What legitimately differs and is not compared: node seq numbers (after the broker restart every
node reconnects and announces itself with a ``status online``, one more message; heartbeats,
temperature and vibration are timed from the instant the simulator starts, not the same in two
runs); ``gateway_start`` facts (one per gateway boot); ``state`` facts (stamped when the
gateway's ticker notices) and the keys of every gateway fact (a restarted gateway numbers its
facts under a new boot).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as Db

import firmware_sim.runner as sim_runner
from crp_cli.broker import find_mosquitto
from crp_cli.demo import _seed_extras
from crp_cli.stack import Stack, crp_cmd
from crp_common.clock import ScaledClock
from crp_common.contract import UPLINK
from crp_common.rules import AuthIndex, MachineLive, decide
from firmware_sim.node import MachineNode
from firmware_sim.scenario import Action, Op, generate_day, work_events
from firmware_sim.workshop import load_workshop
from server.models import Event, Session
from server.snapshot_builder import build_snapshot
from tests.conftest import TEST_POSTGRES_URL, _pg_schema_url, need_service
from tests.e2e.pg import kill_db_connections

SEED = 7
DAY = dt.date(2026, 3, 3)  # a Tuesday; Dakar is UTC+0
SITE_TZ = dt.timezone.utc
MACHINES = ("bandsaw-1", "bandsaw-2", "planer-1", "drill-press-1", "drill-press-2", "arc-welder-1",
            "arc-welder-2", "metal-lathe-1", "sewing-machine-1", "sewing-machine-2", "sewing-machine-3",
            "grain-mill-1")
WINDOW_END = dt.datetime.combine(DAY, dt.time(10, 0), SITE_TZ).timestamp()
SPEED = 400.0
LEAD_REAL_S = 5.0  # real seconds between fixing the clock and the first simulated node boot
QUIET_MARGIN_S = 60.0  # simulated seconds kept clear on each side of an outage
QUIET_MIN_S = 1000.0  # a quiet window must be at least this long (simulated seconds)
SERVER_DOWN = (dt.time(8, 0), dt.time(9, 55))  # local times of the server outage
DB_KILL_AT = dt.time(10, 5)
SETTLE_TIMEOUT_S = 120.0
END_TAIL_REAL_S = 1.5
BROKER_RECONNECT_S = 1.4  # real seconds given to the gateway (retry after 1 s) and nodes (0.5 s)
LOST_MARGIN_S = 0.5 * SPEED  # a QoS 0 sample may be lost if sent this close to the broker outage
# The 72-hour link cut: the first block of each of these machines (idle timeouts of 10 and
# 15 minutes) on the first and third day, played at CUT_SPEED; in between (the nights, the
# second day) the workshop and its gateway are switched off and simulated time jumps.
CUT_MACHINES = ("bandsaw-1", "grain-mill-1", "metal-lathe-1", "sewing-machine-1")
CUT_DAYS = (DAY, DAY + dt.timedelta(days=2))
CUT_SPEED = 1800.0
LINK_CUT_S = 72 * 3600
# Node message kinds played from the action list (their planned times do not depend on when
# the simulator started); heartbeats, temperature and vibration follow the start instant.
ACTION_KINDS = ("badge", "motor", "relay", "fault", "current")


def local(t: dt.time) -> float:
    return dt.datetime.combine(DAY, t, SITE_TZ).timestamp()


@pytest.fixture(autouse=True)
def _needs_mosquitto() -> None:
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")


# --------------------------------------------------------------------------- the day


def workshop12():
    w = load_workshop()
    machines = tuple(m for m in w.machines if m.id in MACHINES)
    assert sorted(m.id for m in machines) == sorted(MACHINES)
    assert all(getattr(m, "plug", None) is None for m in machines)
    return dataclasses.replace(w, machines=machines)


def _block_start(a: Action) -> bool:
    """Where a machine's next block of the generated day begins (a new session, a stand-alone
    deny, a fault); handovers and machine-in-use denials belong to the session under way."""
    if a.op == Op.FAULT:
        return True
    if a.op != Op.TAP:
        return False
    return a.args.get("case") not in ("handover", "machine_in_use")


def day_actions(workshop) -> list[Action]:
    """The generated day, each machine cut at its first block starting at or after WINDOW_END
    (so every session played ends as planned); power cuts after WINDOW_END are dropped."""
    actions = generate_day(workshop, DAY, SEED)
    cut_at: dict[str, float] = {}
    for a in actions:
        if a.machine in MACHINES and a.machine not in cut_at and a.at >= WINDOW_END and _block_start(a):
            cut_at[a.machine] = a.at
    out = []
    for a in actions:
        if a.machine is None:
            if a.at < WINDOW_END:
                out.append(dataclasses.replace(a, args={**a.args, "machines": [m for m in a.args["machines"]
                                                                              if m in MACHINES]}))
        elif a.machine in MACHINES and a.at < cut_at.get(a.machine, float("inf")):
            out.append(a)
    return out


def first_blocks(actions: list[Action], machines: tuple[str, ...]) -> list[Action]:
    """The first block of the day of each machine in ``machines`` (power cuts dropped)."""
    starts: dict[str, int] = defaultdict(int)
    out = []
    for a in actions:
        if a.machine not in machines:
            continue
        if _block_start(a):
            starts[a.machine] += 1
        if starts[a.machine] == 1:
            out.append(a)
    return out


def quiet_windows(actions: list[Action], workshop) -> list[tuple[float, float]]:
    """Stretches (start, end) with no tap, no idle deadline of a walk-away, no power cut or
    restore and no fault, longest first."""
    marks = []
    for a in actions:
        if a.op in (Op.TAP, Op.TAP_OUT, Op.POWER_CUT, Op.POWER_RESTORE, Op.FAULT):
            marks.append(a.at)
        elif a.op == Op.WALK_AWAY:
            # The session ends at the last motor stop + idle timeout, before walk_away + idle.
            marks.append(a.at + workshop.idle_timeout_s(a.machine))
    marks.sort()
    gaps = [(b - a, a, b) for a, b in zip(marks, marks[1:]) if b <= WINDOW_END]
    return [(a, b) for _, a, b in sorted(gaps, reverse=True)]


# --------------------------------------------------------------------------- recording nodes


class RecordingNode(MachineNode):
    """A simulated node that also notes every message it publishes: (node, boot, seq, kind,
    qos, planned time or None when the time is the moment of sending, clamped, body). One
    change of behaviour: the ``status online`` of a RE-connection (after the broker's restart)
    carries the node's latest uptime instead of the network thread's "now" (see _publish).
    ``clamped``: the node stamped the message later than planned, because uptime never goes
    back within a boot and a message stamped "now" went out first while the player thread was
    a little behind (e.g. the ``status online`` of a reconnection)."""

    log: list[tuple] = []
    log_lock = threading.Lock()
    # Set while a node's network thread sends a message stamped "now" (thread-local: the
    # player thread may publish planned messages of the same node at the same moment).
    sending_now = threading.local()

    def _on_connect(self, *a: Any, **kw: Any) -> None:
        self.connects = getattr(self, "connects", 0) + 1
        RecordingNode.sending_now.on = True  # the status message says when the connection came up
        RecordingNode.sending_now.reconnect = self.connects > 1
        try:
            super()._on_connect(*a, **kw)
        finally:
            RecordingNode.sending_now.on = RecordingNode.sending_now.reconnect = False

    def _on_command(self, c: Any) -> None:
        RecordingNode.sending_now.on = True  # a relay_off from the gateway happens when it arrives
        try:
            super()._on_command(c)
        finally:
            RecordingNode.sending_now.on = False

    def _publish(self, model: Any, kind: str, at: float | None, **fields: Any) -> int | None:
        with self._lock:
            if kind == "status" and getattr(RecordingNode.sending_now, "reconnect", False):
                # The simulator stamps this message "now", which runs ahead of the node's planned
                # timeline by the player thread's lag; uptime never going back, the next planned
                # messages (a motor start...) would be stamped late, differently in each run.
                at = self.boot_at + self._last_up / 1000
            seq = super()._publish(model, kind, at, **fields)
            if seq is not None:
                planned = None if (at is None or getattr(RecordingNode.sending_now, "on", False)) else at
                clamped = planned is not None and self._last_up > round((planned - self.boot_at) * 1000)
                with RecordingNode.log_lock:
                    RecordingNode.log.append((self.node_id, self.boot, seq, str(kind), UPLINK[kind].qos, planned,
                                              clamped, dict(fields)))
            return seq


# --------------------------------------------------------------------------- one run


@dataclasses.dataclass
class Outcome:
    sessions: list[tuple]
    invoices: list[tuple]
    total: int
    decisions: list[tuple]
    node_actions: dict[str, list[tuple]]
    log: list[str]
    gateway_counters: dict[str, Any]


class Run:
    def __init__(self, workdir: Path, database_url: str, workshop, actions: list[Action],
                 machines: tuple[str, ...] = MACHINES, speed: float = SPEED):
        self.workdir = workdir
        self.database_url = database_url
        self.workshop = workshop
        self.actions = actions
        self.machines = machines
        self.speed = speed
        self.stack = Stack(workdir, database_url, site="DKR")
        self.log: list[str] = []
        self.outages: dict[str, tuple[float, float]] = {}  # what -> (from, to) simulated seconds
        self.recorded: list[tuple] = []

    def start(self) -> "Run":
        s = self.stack
        s.start_broker()
        s.start_server()
        self.ids = s.seed(self.workshop)
        _seed_extras(s, self.workshop)
        first = min(a.at for a in self.actions)
        self.clock = ScaledClock(real_origin=time.time() + LEAD_REAL_S, sim_origin=first - 5 * 60,
                                 speed=self.speed)
        s.clock_spec = self.clock.spec()
        s.gateway_env.update({
            "CRP_BADGE_MAX_AGE_S": str(3 * self.speed),  # the nodes wait 5 real seconds
            # Silence is judged in real time too: a node is offline after 12 real seconds of
            # silence, longer than any outage here lasts (a power cut is seen by its Last Will).
            "CRP_OFFLINE_AFTER_S": str(12 * self.speed),
        })
        s.start_gateway()
        RecordingNode.log = []
        return self

    def night(self, until: float) -> None:
        """The workshop is switched off for the night, the gateway too (a clean stop: what it
        holds for the server stays in its spool). Nothing runs, so simulated time jumps to
        ``until``; the gateway starts again there on a clock going on at the day's speed."""
        self.stack.gateway.stop()
        self.clock = ScaledClock(real_origin=time.time(), sim_origin=max(until, self.clock.now()), speed=self.speed)
        self.stack.clock_spec = self.clock.spec()
        self.stack.start_gateway()

    def simulate(self, actions: list[Action]) -> Any:
        """Play ``actions`` with recording nodes. The nodes are switched off END_TAIL_REAL_S
        after the last walk-away's idle deadline: the gateway's ticker (every 0.2 real s) has
        closed that session by then, so it does not end by the power-off instead."""
        ends = [a.at + (self.workshop.idle_timeout_s(a.machine) if a.op == Op.WALK_AWAY else 0) for a in actions]
        until = max(ends) + END_TAIL_REAL_S * self.clock.speed
        user, password = self.stack.mqtt_creds("sim")
        orig = sim_runner.MachineNode
        sim_runner.MachineNode = RecordingNode
        try:
            return sim_runner.run_scenario(actions, self.workshop, self.stack.broker.host, self.stack.broker.port,
                                           user, password, self.clock, self.workdir / "nodes",
                                           machines=list(self.machines), until=until)
        finally:
            sim_runner.MachineNode = orig
            self.recorded = list(RecordingNode.log)

    def play_days(self, days: list[list[Action]], cut: bool) -> list[Any]:
        """Several workshop days with a night in between. With ``cut``, the server is killed
        before the first day and comes back LINK_CUT_S later."""
        s = self.stack
        t_cut = self.clock.now()
        if cut:
            s.server.kill9()
            self.outages["server"] = (t_cut, 0.0)
            self.log.append("server killed")
        reports = []
        for i, acts in enumerate(days):
            if i > 0:  # the gateway's start takes a few real seconds: wake up early
                self.night(min(a.at for a in acts) - 90 * 60)
            reports.append(self.simulate(acts))
            after = self.clock.now_ms()
            s.gw_status.wait(lambda st: st.get("open_sessions") == 0 and st.get("now", 0) > after, SETTLE_TIMEOUT_S)
            if cut:
                st = s.gw_status.latest
                assert st.get("server") is False and st.get("pending", 0) > 0, st
        self.night(t_cut + LINK_CUT_S)
        if cut:
            s.start_server()
            self.outages["server"] = (t_cut, self.clock.now())
            self.log.append(f"server restarted {(self.clock.now() - t_cut) / 3600:.1f} simulated hours later")
        s.wait_settled(SETTLE_TIMEOUT_S, after_ms=self.clock.now_ms())
        return reports

    def wait_until(self, t: float, done: threading.Event) -> None:
        while not done.is_set() and self.clock.now() < t:
            time.sleep(0.01)

    def play(self, chaos: bool, quiet: list[tuple[float, float]]) -> Any:
        done = threading.Event()
        errors: list[BaseException] = []

        def chaos_thread() -> None:
            try:
                self._chaos(done, quiet)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)

        th = threading.Thread(target=chaos_thread, daemon=True)
        if chaos:
            th.start()
        try:
            report = self.simulate(self.actions)
        finally:
            done.set()
            if chaos:
                th.join(120)
        if errors:
            raise errors[0]
        self.stack.wait_settled(SETTLE_TIMEOUT_S, after_ms=self.clock.now_ms())
        return report

    def _chaos(self, done: threading.Event, quiet: list[tuple[float, float]]) -> None:
        s = self.stack
        (b0, b1), (g0, g1) = sorted(quiet[:2])

        def check_within(what: str, end: float) -> None:
            now = self.clock.now()
            if now > end:
                raise AssertionError(f"{what} outage outlasted its quiet window by {now - end:.0f} simulated s: "
                                     "the machine is too slow for SPEED, the comparison would not be fair")

        # The server goes down: the link is cut, the gateway decides alone and spools.
        self.wait_until(local(SERVER_DOWN[0]), done)
        s.server.kill9()
        self.outages["server"] = (self.clock.now(), 0.0)
        self.log.append("server killed")
        # The broker dies (kill -9) and comes back on its persistence file (saved every second);
        # nodes and gateway reconnect by themselves.
        self.wait_until(b0 + QUIET_MARGIN_S, done)
        t0 = self.clock.now()
        s.broker.kill()
        self.log.append("broker killed")
        time.sleep(0.3)
        s.broker.start()
        self.log.append("broker restarted")
        # The gateway retries after 1 real second, the nodes every 0.5 s.
        time.sleep(BROKER_RECONNECT_S)
        self.outages["broker"] = (t0, self.clock.now())
        self.log.append(f"broker outage {self.clock.now() - t0:.0f} simulated s, window left "
                        f"{b1 - QUIET_MARGIN_S - self.clock.now():.0f} s")
        check_within("broker", b1 - QUIET_MARGIN_S)
        # The gateway dies in the middle of the stream, with unforwarded events in its spool.
        self.wait_until(g0 + QUIET_MARGIN_S, done)
        st = s.gw_status.latest
        assert st.get("server") is False and st.get("pending", 0) > 0, st
        self.log.append(f"gateway killed (pending {st.get('pending')})")
        t0 = self.clock.now()
        boot = st.get("boot", 0)
        s.gateway.kill9()
        s.start_gateway(wait_cache=False)
        self.stack.gw_status.wait(lambda x: x.get("state") == "online" and x.get("boot", 0) > boot, 60)
        self.outages["gateway"] = (t0, self.clock.now())
        self.log.append(f"gateway restarted ({self.clock.now() - t0:.0f} simulated s later, window left "
                        f"{g1 - QUIET_MARGIN_S - self.clock.now():.0f} s)")
        check_within("gateway", g1 - QUIET_MARGIN_S)
        self.wait_until(local(SERVER_DOWN[1]), done)
        s.start_server()
        self.outages["server"] = (self.outages["server"][0], self.clock.now())
        self.log.append("server restarted")
        if self.database_url.startswith("postgresql"):
            self.wait_until(local(DB_KILL_AT), done)
            n = kill_db_connections(self.database_url, s.server.proc.pid)
            self.log.append(f"database connections killed ({n})")

    # -- what the run left

    def outcome(self) -> Outcome:
        engine = create_engine(self.database_url)
        try:
            with Db(engine) as db:
                sessions = list(db.scalars(select(Session)))
                events = list(db.execute(select(Event.source, Event.boot, Event.seq, Event.kind, Event.machine,
                                                Event.t_ms, Event.body)))
                snap = AuthIndex.of(build_snapshot(db, "DKR", self.clock.now_ms()))
        finally:
            engine.dispose()
        planned = {(n, b, q): at for n, b, q, _k, _qos, at, _c, _f in self.recorded}
        check_events(self, events, sessions, snap)
        norm_sessions = []
        for x in sessions:
            machine, node, boot, seq = x.id.split(":")
            at = planned[(node, int(boot), int(seq))]
            assert at is not None and x.end_ms is not None, x.id
            norm_sessions.append((x.machine, x.artisan, x.badge_uid, at, x.end_ms - x.start_ms, x.run_ms,
                                  x.end_reason))
        with self.stack.api() as api:
            r = api.post("/api/v1/billing/run", json={"period": DAY.strftime("%Y-%m")})
            assert r.status_code == 200, r.text
            data = r.json()
            invoices = data["invoices"] if isinstance(data, dict) else data
        billed = sorted(ln["session_id"] for inv in invoices for ln in inv["lines"])
        assert billed == sorted(x.id for x in sessions), "every closed session on exactly one invoice line"
        inv_norm = sorted((inv["bill_to_name"], inv["currency"], inv["subtotal"], inv["tax"], inv["total"],
                           tuple(sorted((ln["machine"], ln["artisan_id"], ln["billed_minutes"], ln["amount"])
                                        for ln in inv["lines"]))) for inv in invoices)
        decisions = sorted((e[4], planned[(e[6]["req"]["node"], e[6]["req"]["boot"], e[6]["req"]["seq"])],
                            e[6]["uid"], e[6]["result"], e[6]["reason"], e[6]["artisan"])
                           for e in events if e[3] == "decision")
        node_actions: dict[str, list[tuple]] = defaultdict(list)
        for node, boot, _seq, kind, _qos, at, _c, fields in sorted(self.recorded, key=lambda r: (r[0], r[1], r[2])):
            if kind in ACTION_KINDS and at is not None:
                node_actions[node].append((boot, kind, at, {k: v for k, v in fields.items() if k != "amps"}))
        status = json.loads(subprocess.run(crp_cmd("gateway", "status", "--data-dir",
                                                   str(self.workdir / "gateway")),
                                           capture_output=True, text=True, check=True).stdout)
        return Outcome(sorted(norm_sessions), inv_norm, sum(inv["total"] for inv in invoices), decisions,
                       dict(node_actions), list(self.log), status.get("counters", {}))

    def stop(self) -> None:
        self.stack.stop()


# --------------------------------------------------------------------------- checks


def check_events(run: Run, events: list[tuple], sessions: list[Session], snap: AuthIndex) -> None:
    """Nothing lost, nothing twice, every node event at its planned time (plus one constant per
    node boot), every decision what the server's rule decides on the server's data."""
    keys = [(e[0], e[1], e[2]) for e in events]
    assert len(keys) == len(set(keys)), "an event key is in the log twice"
    by_key = {(e[0], e[1], e[2]): e for e in events}
    # QoS 0 samples are "at most once" by contract: those a node sent while the broker was dead,
    # and those the gateway had received but not yet written when it was killed, are gone.
    may_lose = [(what, run.outages[what][0] - LOST_MARGIN_S,
                 run.outages[what][1 if what == "broker" else 0] + LOST_MARGIN_S)
                for what in ("broker", "gateway") if what in run.outages]
    missing_qos0: Counter = Counter()
    offsets: dict[tuple[str, int], set[int]] = defaultdict(set)
    clamped = 0
    for node, boot, seq, kind, qos, at, was_clamped, _fields in run.recorded:
        e = by_key.get((node, boot, seq))
        if e is None:
            why = [w for w, a, b in may_lose if qos == 0 and at is not None and a <= at <= b]
            assert why, ("lost", node, boot, seq, kind, qos, at, may_lose)
            missing_qos0[why[0]] += 1
            continue
        assert e[3] == kind, (node, boot, seq, e[3], kind)
        if at is not None and kind != "status" and not was_clamped:
            offsets[(node, boot)].add(e[5] - round(at * 1000))
        clamped += was_clamped
    # Durations inside a boot are exact: one anchor offset per node boot (1 ms of rounding).
    for k, offs in offsets.items():
        assert max(offs) - min(offs) <= 1, (k, sorted(offs)[:3], sorted(offs)[-3:])
    # Beside what the nodes sent: one Last Will (seq 0, published by the broker) per node boot
    # that ended by losing power (the end of the run switches every node off).
    node_events = [k for k in keys if k[0] != run.stack.gateway_id and k[2] > 0]
    assert len(node_events) == len(run.recorded) - sum(missing_qos0.values())
    wills = {(k[0], k[1]) for k in keys if k[0] != run.stack.gateway_id and k[2] == 0}
    assert wills == {(n, b) for n, b, *_ in run.recorded}
    run.log.append(f"node messages {len(run.recorded)} ({clamped} stamped late by the node), "
                   f"QoS 0 samples lost: {dict(missing_qos0)}")

    # Nothing decided twice: one decision per badge request, one opening and one closing per
    # session, whatever the gateway restarts (a restarted gateway's facts have new keys).
    facts = Counter((e[3], json.dumps(e[6]["req"] if e[3] == "decision" else e[6]["session"], sort_keys=True))
                    for e in events if e[3] in ("decision", "session_open", "session_close"))
    assert max(facts.values()) == 1, [k for k, n in facts.items() if n > 1][:5]
    assert len(sessions) == sum(1 for k, _ in facts if k == "session_open") \
        == sum(1 for k, _ in facts if k == "session_close")

    # Every decision re-decided by the server's rule on the server's data.
    motor = defaultdict(list)
    for e in events:
        if e[3] == "motor":
            motor[e[4]].append((e[5], bool(e[6].get("running"))))
    for v in motor.values():
        v.sort()
    server_down = run.outages.get("server")
    offline = 0
    decisions = [e for e in events if e[3] == "decision"]
    assert decisions
    for e in decisions:
        machine, t, body = e[4], e[5], e[6]
        open_s = [x for x in sessions if x.machine == machine and x.start_ms < t <= x.end_ms]
        running = [r for tm, r in motor[machine] if tm <= t]
        live = MachineLive(session_artisan=open_s[0].artisan if open_s else None,
                           motor_running=bool(running and running[-1]))
        day = dt.datetime.fromtimestamp(t / 1000, SITE_TZ).date()
        d = decide(snap, machine, body["uid"], live, day)
        assert (d.result, d.reason) == (body["result"], body["reason"]), (machine, t, body)
        if server_down and server_down[0] * 1000 <= t <= server_down[1] * 1000:
            offline += 1
    run.decisions_offline = (len(decisions), offline)
    if server_down:
        assert offline >= 10, f"only {offline} decisions taken while the server was down"
        run.log.append(f"decisions {len(decisions)}, offline {offline}")


def first_difference(a: dict[str, list], b: dict[str, list]) -> str | None:
    """Where two runs' node messages first differ, for a readable failure."""
    for node in sorted(set(a) | set(b)):
        x, y = a.get(node, []), b.get(node, [])
        if x != y:
            i = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
            return f"{node}: {len(x)} vs {len(y)} messages; first difference at {i}: {x[i:i + 3]} vs {y[i:i + 3]}"
    return None


# --------------------------------------------------------------------------- the test


@contextlib.contextmanager
def two_databases(tmp_path: Path):
    """Two empty databases of the backend under test: PostgreSQL when TEST_POSTGRES_URL is set
    (two schemas, dropped afterwards), else SQLite files."""
    if not TEST_POSTGRES_URL:
        yield [f"sqlite:///{tmp_path / f'crp-{i}.db'}" for i in range(2)]
        return
    from sqlalchemy import text

    schemas = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    admin = create_engine(TEST_POSTGRES_URL)
    with admin.begin() as c:
        for sc in schemas:
            c.execute(text(f'CREATE SCHEMA "{sc}"'))
    admin.dispose()
    try:
        yield [_pg_schema_url(TEST_POSTGRES_URL, sc) for sc in schemas]
    finally:
        admin = create_engine(TEST_POSTGRES_URL)
        with admin.begin() as c:
            for sc in schemas:
                c.execute(text(f'DROP SCHEMA "{sc}" CASCADE'))
        admin.dispose()


@pytest.mark.faults
def test_generated_day_with_faults_equals_the_fault_free_run(tmp_path: Path) -> None:
    """On one backend per run of the suite: PostgreSQL when TEST_POSTGRES_URL is set (with the
    database connections killed too), else SQLite. The two plays take most of the file's time."""
    workshop = workshop12()
    actions = day_actions(workshop)
    assert not any(a.op == Op.FAULT for a in actions)  # no server-side lock in the window
    quiet = quiet_windows(actions, workshop)
    (b0, b1), (g0, g1) = sorted(quiet[:2])
    assert min(b1 - b0, g1 - g0) >= QUIET_MIN_S, quiet[:2]
    assert local(SERVER_DOWN[0]) < b0 and g1 < local(SERVER_DOWN[1]), "both kills while the server is down"

    outcomes = {}
    with two_databases(tmp_path) as urls:
        for name, db_url in zip(("fault-free", "chaos"), urls):
            run = Run(tmp_path / name, db_url, workshop, actions)
            try:
                run.start()
                report = run.play(chaos=name == "chaos", quiet=quiet)
                assert report.timeouts == 0 and not report.mismatches, (report.timeouts, report.mismatches[:3])
                outcomes[name] = run.outcome()
            finally:
                run.stop()
    ok, bad = outcomes["fault-free"], outcomes["chaos"]
    print("fault-free:", ok.log, "chaos:", bad.log, "gateway counters:", bad.gateway_counters)
    assert any(x.startswith("gateway killed") for x in bad.log) and "broker restarted" in bad.log
    assert len(ok.sessions) >= 20
    assert bad.sessions == ok.sessions
    assert bad.invoices == ok.invoices
    assert bad.total == ok.total > 0
    assert bad.decisions == ok.decisions
    assert first_difference(bad.node_actions, ok.node_actions) is None


@pytest.mark.faults
def test_72_hours_without_the_server_equals_the_connected_run(tmp_path: Path) -> None:
    """The link to the server is cut for 72 simulated hours over three generated days (SQLite):
    sessions, invoices, decisions and node messages are those of the same days played with the
    server up, and every badge (all decided offline) is what the server's rule decides."""
    workshop = workshop12()
    days = [first_blocks(generate_day(workshop, d, SEED), CUT_MACHINES) for d in CUT_DAYS]
    assert all(days) and sum(1 for d in days for a in d if a.op == Op.TAP) >= 8
    outcomes = {}
    for i, name in enumerate(("connected", "cut")):
        run = Run(tmp_path / name, f"sqlite:///{tmp_path / f'crp-{i}.db'}", workshop, days[0], machines=CUT_MACHINES,
                  speed=CUT_SPEED)
        try:
            run.start()
            reports = run.play_days(days, cut=name == "cut")
            for report in reports:
                assert report.timeouts == 0 and not report.mismatches, (report.timeouts, report.mismatches[:3])
            outcomes[name] = run.outcome()
            outcomes[name].log.append(f"decisions, offline: {run.decisions_offline}")
            if name == "cut":
                assert run.decisions_offline[0] == run.decisions_offline[1] >= 8
                down_from, down_to = run.outages["server"]
                assert down_to - down_from >= LINK_CUT_S
        finally:
            run.stop()
    ok, cut = outcomes["connected"], outcomes["cut"]
    print("connected:", ok.log, "cut:", cut.log)
    assert len(ok.sessions) >= 8
    assert cut.sessions == ok.sessions
    assert cut.invoices == ok.invoices
    assert cut.total == ok.total > 0
    assert cut.decisions == ok.decisions
    assert first_difference(cut.node_actions, ok.node_actions) is None
