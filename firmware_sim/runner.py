"""Play a scenario against a broker: one :class:`MachineNode` per machine, one thread per
machine that performs that machine's actions at their simulated times, plus the node's own
periodic traffic (heartbeats, current samples while the motor runs, temperature and vibration).

A machine on a metering plug (``Machine.plug``) is played by a :class:`PluggedMachine`: a badge
reader node under the reader's machine id (taps, heartbeats) and a simulated plug speaking its
firmware's topics with its own broker user (``plug_creds``). The gateway switches the plug on
a grant; work cycles switch the plug's load (power draw) and the plug reports every
``PLUG_REPORT_S`` simulated seconds and at each change; a power cut cuts both (the plug's Last
Will). Ops a plug cannot play (``fault``, ``overheat``, ``silence``) are skipped and counted in
``SimReport.skipped``; :func:`~firmware_sim.scenario.generate_day` never plans them there.
Plug messages carry no uptime: the gateway stamps them on receipt, so their durations are as
exact as the delivery delay times the clock's speed.

Every message is stamped with the PLANNED simulated time of the physical event (the action's
``at`` or the tick's time), not with the moment the thread got to publish it, so durations seen
downstream are exact whatever the scheduling jitter.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Union

from crp_common.clock import Clock

from .node import MachineNode
from .plugs import PluggedMachine, SimPlug, make_plug
from .scenario import MULTI_MACHINE_OPS, TAP_OPS, Action, Op, ScenarioError, check_machines, work_events
from .workshop import Machine, Workshop

log = logging.getLogger(__name__)

HEARTBEAT_S = 60.0  # simulated seconds between heartbeats
CURRENT_SAMPLE_S = 10.0  # current samples while the motor runs
TEMP_SAMPLE_S = 60.0  # temperature (and vibration while running) samples
DECISION_TIMEOUT_S = 5.0  # real seconds a tap waits for the gateway's answer
END_TAIL_S = 60.0  # simulated seconds played after the last action by default
AMBIENT_C = 31.0
MOTOR_HEAT_C = 19.0  # steady-state rise above ambient with the motor running
HEAT_TAU_S = 900.0  # thermal time constant
OVERHEAT_RAMP_S = 60.0
OVERHEAT_OVERSHOOT_C = 1.5
VIB_RUNNING_RMS = (1.2, 3.4)
AMPS_NOISE = 0.06
PLUG_REPORT_S = 30.0  # simulated seconds between a plug's periodic reports (TelePeriod 30)
PLUG_SWITCH_WAIT_S = 3.0  # real seconds a work block waits for the gateway to switch the plug on
PLUG_SWITCH_POLL_S = 0.01

# (user, password) for every plug, or plug id -> (user, password) for per-device users.
PlugCreds = Union[tuple[str, str], Mapping[str, tuple[str, str]]]


class MissingPlugCredentials(ScenarioError):
    """Plug machines are in the run but no broker user was given for the plugs."""

# Event priorities at equal times: power first, then actions in list order, then samples.
_P_POWER, _P_ACTION, _P_MOTOR, _P_TICK = 0, 1, 2, 3


@dataclass(frozen=True)
class DecisionRecord:
    at: float
    machine: str
    uid: str
    result: str | None  # None: no answer within the timeout
    reason: str | None
    artisan: str | None
    expect: str | None = None
    expect_reason: str | None = None
    case: str | None = None

    @property
    def as_expected(self) -> bool:
        if self.expect is None:
            return True
        if self.result != self.expect:
            return False
        return self.expect != "deny" or self.expect_reason is None or self.reason == self.expect_reason


@dataclass
class SimReport:
    taps: int = 0
    grants: int = 0
    ends: int = 0
    denies: Counter = field(default_factory=Counter)  # deny reason -> count
    timeouts: int = 0
    power_cuts: int = 0  # power_cut actions played
    nodes_cut: int = 0
    skipped: int = 0  # actions a dead node or an open relay could not perform
    messages: int = 0
    max_late_s: float = 0.0  # worst lateness of the players, in simulated seconds
    decisions: list[DecisionRecord] = field(default_factory=list)

    @property
    def deny_total(self) -> int:
        return sum(self.denies.values())

    @property
    def mismatches(self) -> list[DecisionRecord]:
        """Decisions that differ from what the scenario expected."""
        return [d for d in self.decisions if not d.as_expected]


class _Player(threading.Thread):
    """Plays one machine: its actions and its node's periodic traffic, in time order."""

    def __init__(self, run: "_Run", machine: Machine, node: MachineNode, actions: list[Action], index: int,
                 plug: SimPlug | None = None):
        super().__init__(name=f"sim-{machine.id}", daemon=True)
        self.run_ = run
        self.machine = machine
        self.node = node  # for a plug machine: its badge reader
        self.plug = plug
        self.plug_gen = 0  # power-ups of the plug: a tick of an earlier one is dropped
        self.cut_short: set[int] = set()  # work blocks whose plug went off before their end
        self.rng = random.Random(f"sim:{machine.id}")
        self.heap: list[tuple[float, int, int, str, object]] = []
        self.n = 0
        self.offset = (index * 7.0) % HEARTBEAT_S  # spread nodes' heartbeats over the minute
        self.temp = AMBIENT_C
        self.temp_at: float | None = None
        self.overheat: tuple[float, float, float] | None = None  # start, end, peak
        self.motor_gen = 0
        self.amps = 0.0
        for a in actions:
            self._push(a.at, _P_POWER if a.op in MULTI_MACHINE_OPS else _P_ACTION, "action", a)

    def _push(self, at: float, prio: int, kind: str, data: object) -> None:
        self.n += 1
        heapq.heappush(self.heap, (at, prio, self.n, kind, data))

    def _schedule_ticks(self, start: float) -> None:
        boot = self.node.boot
        self._push(start + self.offset, _P_TICK, "hb", boot)
        if self.plug is None:
            self._push(start + (self.offset + 30.0) % TEMP_SAMPLE_S, _P_TICK, "temp", boot)
        else:  # a reader has no sensors; the plug reports power and energy
            self.plug_gen += 1
            self._push(start + PLUG_REPORT_S - self.offset % PLUG_REPORT_S, _P_TICK, "plug", self.plug_gen)

    def run(self) -> None:
        try:
            self._schedule_ticks(self.run_.start)
            while self.heap and not self.run_.stop.is_set():
                at, _, _, kind, data = heapq.heappop(self.heap)
                if at > self.run_.until and kind != "action":
                    continue
                if not self.run_.wait_until(at):
                    return
                self.run_.late(at)
                if kind == "action":
                    self._action(at, data)  # type: ignore[arg-type]
                    self.run_.progress(at)
                else:
                    self._tick(at, kind, data)
        except Exception:  # a broken player must not hang the run
            log.exception("player %s failed", self.machine.id)
            self.run_.stop.set()

    # ------------------------------------------------------------------ periodic traffic

    def _tick(self, at: float, kind: str, data: object) -> None:
        node = self.node
        if kind == "hb":
            if node.powered and node.boot == data:
                node.heartbeat(at)
                self._push(at + HEARTBEAT_S, _P_TICK, "hb", data)
        elif kind == "temp":
            if node.powered and node.boot == data:
                node.temperature(self._temperature(at), at)
                if node.motor_running:
                    node.vibration(self.rng.uniform(*VIB_RUNNING_RMS), at)
                self._push(at + TEMP_SAMPLE_S, _P_TICK, "temp", data)
        elif kind == "current":
            gen = data
            if node.powered and node.motor_running and gen == self.motor_gen:
                node.current(self.amps * (1 + self.rng.uniform(-AMPS_NOISE, AMPS_NOISE)), at)
                self._push(at + CURRENT_SAMPLE_S, _P_TICK, "current", gen)
        elif kind == "motor":
            boot, on, amps = data  # type: ignore[misc]
            if not node.powered or node.boot != boot:
                return
            if on:
                amps = amps * (1 + self.rng.uniform(-AMPS_NOISE, AMPS_NOISE))
            if node.motor(on, round(amps, 2), at):
                self.motor_gen += 1
                self.amps = amps
                if on:
                    self._push(at + CURRENT_SAMPLE_S, _P_TICK, "current", self.motor_gen)
        elif kind == "unsilence":
            node.set_silent(False)
        elif kind == "plug":
            plug = self.plug
            if plug is not None and plug.powered and data == self.plug_gen:
                plug.report(at)
                self._push(at + PLUG_REPORT_S, _P_TICK, "plug", data)
        elif kind == "plug_motor":
            gen, on, a = data  # type: ignore[misc]
            plug = self.plug
            if plug is None or not plug.powered or gen != self.plug_gen:
                return
            if not plug.motor(on, at) and on and not plug.relay and id(a) not in self.cut_short:
                # The session ended under the artisan (e.g. an idle timeout): the plug is off.
                self.cut_short.add(id(a))
                self.run_.skip(a, "the plug was switched off during the work")

    def _plug_switched_on(self, plug: SimPlug) -> bool:
        """The gateway switches the plug right after its grant: give its command a moment
        (once per work block, so a lost command cannot make the player late all day)."""
        deadline = time.monotonic() + PLUG_SWITCH_WAIT_S
        while not plug.relay:
            if time.monotonic() > deadline or self.run_.stop.is_set() or not plug.powered:
                return False
            time.sleep(PLUG_SWITCH_POLL_S)
        return True

    def _temperature(self, at: float) -> float:
        if self.temp_at is not None:
            target = AMBIENT_C + (MOTOR_HEAT_C if self.node.motor_running else 0.0)
            self.temp += (target - self.temp) * (1 - math.exp(-(at - self.temp_at) / HEAT_TAU_S))
        self.temp_at = at
        value = self.temp
        if self.overheat is not None:
            start, end, peak = self.overheat
            if start <= at <= end:
                shape = min(1.0, (at - start) / OVERHEAT_RAMP_S, (end - at) / OVERHEAT_RAMP_S)
                value = self.temp + (peak + OVERHEAT_OVERSHOOT_C - self.temp) * shape
            elif at > end:
                self.overheat = None
        return value + self.rng.uniform(-0.3, 0.3)

    # ------------------------------------------------------------------ actions

    def _action(self, at: float, a: Action) -> None:
        if self.plug is not None:
            self._plug_action(at, a, self.plug)
            return
        node, run = self.node, self.run_
        op = a.op
        if op == Op.POWER_CUT:
            if node.powered:
                node.power_cut()
                run.count_cut(a)
            return
        if op == Op.POWER_RESTORE:
            if not node.powered:
                node.power_restore(at=at)
                self._schedule_ticks(at)
            return
        if not node.powered:
            run.skip(a, "node without power")
            return
        if op in TAP_OPS:
            req = node.tap(a.args["uid"], at)
            decision = None if req is None else node.wait_decision(req, run.decision_timeout_s)
            run.record(a, decision)
        elif op == Op.WORK:
            if not node.relay:
                run.skip(a, "relay off: the tap was not granted")
                return
            amps = float(a.args.get("amps", 5.0))
            for t, on in work_events(at, a.args["cycles"]):
                self._push(t, _P_MOTOR, "motor", (node.boot, on, amps))
        elif op == Op.FAULT:
            node.fault(a.args["code"], bool(a.args["active"]), at)
        elif op == Op.OVERHEAT:
            dur = float(a.args.get("duration_s", 600))
            self.overheat = (at, at + dur, float(a.args.get("peak_c", 78.0)))
        elif op == Op.SILENCE:
            node.set_silent(True)
            self._push(at + float(a.args.get("duration_s", 600)), _P_ACTION, "unsilence", None)
        elif op == Op.WALK_AWAY:
            pass  # the artisan leaves: nothing happens at the node, the gateway times out
        else:
            run.skip(a, f"unknown op {op}")

    def _plug_action(self, at: float, a: Action, plug: SimPlug) -> None:
        """An action on a plug machine: taps on its reader, work on the plug's load."""
        reader, run = self.node, self.run_
        op = a.op
        if op == Op.POWER_CUT:
            if reader.powered or plug.powered:
                reader.power_cut()
                plug.power_cut()
                run.count_cut(a)
            return
        if op == Op.POWER_RESTORE:
            if not reader.powered:
                plug.power_on(at=at)
                reader.power_restore(at=at)
                self._schedule_ticks(at)
            return
        if not reader.powered:
            run.skip(a, "reader without power")
            return
        if op in TAP_OPS:
            req = reader.tap(a.args["uid"], at)
            decision = None if req is None else reader.wait_decision(req, run.decision_timeout_s)
            run.record(a, decision)
        elif op == Op.WORK:
            if not reader.relay:
                run.skip(a, "the tap was not granted")
                return
            if not self._plug_switched_on(plug):
                run.skip(a, "the gateway did not switch the plug on after the grant")
                return
            for t, on in work_events(at, a.args["cycles"]):
                self._push(t, _P_MOTOR, "plug_motor", (self.plug_gen, on, a))
        elif op == Op.WALK_AWAY:
            pass
        else:  # fault, overheat, silence: a plug has no such input
            run.skip(a, f"{op} cannot be played by a metering plug")


class _Run:
    def __init__(self, clock: Clock, until: float, start: float, total: int, decision_timeout_s: float,
                 on_progress: Callable[[int, int, float], None] | None, stop: threading.Event):
        self.clock = clock
        self.until = until
        self.start = start
        self.total = total
        self.decision_timeout_s = decision_timeout_s
        self.on_progress = on_progress
        self.stop = stop
        self.report = SimReport()
        self.lock = threading.Lock()
        self.done = 0
        self._cuts_seen: set[int] = set()

    def wait_until(self, at: float) -> bool:
        """Sleep until simulated time ``at``; False if the run was stopped."""
        while True:
            left = (at - self.clock.now()) / self.clock.speed
            if left <= 0:
                return not self.stop.is_set()
            if self.stop.wait(min(left, 1.0)):
                return False

    def late(self, at: float) -> None:
        late = self.clock.now() - at
        if late > self.report.max_late_s:
            with self.lock:
                self.report.max_late_s = max(self.report.max_late_s, late)

    def progress(self, at: float) -> None:
        with self.lock:
            self.done += 1
            done = self.done
        if self.on_progress is not None:
            self.on_progress(done, self.total, at)

    def count_cut(self, a: Action) -> None:
        with self.lock:
            self.report.nodes_cut += 1
            if id(a) not in self._cuts_seen:
                self._cuts_seen.add(id(a))
                self.report.power_cuts += 1

    def skip(self, a: Action, why: str) -> None:
        log.debug("skipped %s on %s at %s: %s", a.op, a.machine, a.at, why)
        with self.lock:
            self.report.skipped += 1

    def record(self, a: Action, d) -> None:  # d: DecisionMsg | None
        rec = DecisionRecord(at=a.at, machine=a.machine or "", uid=a.args["uid"],
                             result=None if d is None else d.result, reason=None if d is None else d.reason,
                             artisan=None if d is None else d.artisan, expect=a.args.get("expect"),
                             expect_reason=a.args.get("reason"), case=a.args.get("case"))
        with self.lock:
            r = self.report
            r.taps += 1
            r.decisions.append(rec)
            if d is None:
                r.timeouts += 1
            elif d.result == "grant":
                r.grants += 1
            elif d.result == "end":
                r.ends += 1
            else:
                r.denies[d.reason or "unknown"] += 1


def _split(actions: Iterable[Action], machines: list[str]) -> dict[str, list[Action]]:
    per: dict[str, list[Action]] = {m: [] for m in machines}
    for a in actions:
        for m in a.machines():
            per[m].append(a)
    return per


def _settled_at(actions: list[Action], workshop: Workshop, default: float) -> float:
    """When the last action has played out: a walk-away lasts until the idle timeout."""
    ends = [a.at + (workshop.idle_timeout_s(a.machine) if a.op == Op.WALK_AWAY and a.machine else 0)
            for a in actions]
    return max(ends, default=default)


def run_scenario(actions: list[Action], workshop: Workshop, broker_host: str, broker_port: int,
                 username: str | None, password: str | None, clock: Clock, state_dir: str | Path,
                 on_progress: Callable[[int, int, float], None] | None = None, *,
                 until: float | None = None, machines: list[str] | None = None,
                 decision_timeout_s: float = DECISION_TIMEOUT_S, power_off_at_end: bool = True,
                 stop: threading.Event | None = None, plug_creds: PlugCreds | None = None) -> SimReport:
    """Play ``actions`` at their simulated times with one node per machine and return what
    happened. All nodes (``machines``: every machine of the workshop by default) power up and
    connect first. The run ends at ``until`` (default: END_TAIL_S after the last action, or after
    the idle timeout that ends the last walk-away, whichever is later); the nodes are
    then switched off like a workshop at closing time, unless ``power_off_at_end`` is False.
    ``on_progress(done, total, sim_time)`` is called after each action (from player threads).

    Machines on a metering plug need ``plug_creds``: ``(user, password)`` for all plugs or a
    mapping plug id -> ``(user, password)``; without them the default ``machines`` are the node
    machines only, and a plug machine named by an action or in ``machines`` raises
    :class:`MissingPlugCredentials` (use ``workshop.without_plugs()`` to leave them out)."""
    actions = sorted(actions, key=lambda a: a.at)
    check_machines(actions, workshop)
    ids = list(machines or [m.id for m in workshop.machines if plug_creds is not None or m.plug is None])
    ids += sorted({m for a in actions for m in a.machines()} - set(ids))
    plugged = [mid for mid in ids if workshop.machine(mid).plug is not None]
    if plugged and plug_creds is None:
        raise MissingPlugCredentials(
            f"machines on metering plugs need plug_creds (a broker user allowed on the plug topics, "
            f"docs/plugs.md): {', '.join(plugged)}")
    stop = stop or threading.Event()
    start = clock.now()
    until = until if until is not None else _settled_at(actions, workshop, start) + END_TAIL_S
    total = sum(len(a.machines()) for a in actions)
    run = _Run(clock, until, start, total, decision_timeout_s, on_progress, stop)
    site = workshop.site.code
    nodes: dict[str, MachineNode] = {}
    plugs: dict[str, SimPlug] = {}
    for mid in ids:
        m = workshop.machine(mid)
        if m.plug is None:
            nodes[mid] = MachineNode(site, m.id, m.node, broker_host, broker_port, username, password, clock,
                                     state_dir, fw=m.fw, clock_skew_s=m.clock_skew_s)
            continue
        assert plug_creds is not None
        puser, ppass = _plug_creds_for(plug_creds, m.node)
        plugs[mid] = make_plug(m.plug.type, m.plug.topic, broker_host, broker_port, puser, ppass, clock,
                               client_id=m.node, load_w=m.plug.load_w, idle_w=m.plug.idle_w,
                               report_period_s=None)  # the player sends the reports on the simulated clock
        nodes[mid] = MachineNode(site, m.plug.reader, m.plug.reader_node, broker_host, broker_port, username,
                                 password, clock, state_dir, clock_skew_s=0.0)
    try:
        for mid, node in nodes.items():
            if mid in plugs:
                PluggedMachine(plugs[mid], node).power_on(at=start)
            else:
                node.power_on(at=start)
        per = _split(actions, ids)
        players = [_Player(run, workshop.machine(mid), nodes[mid], per[mid], i, plugs.get(mid))
                   for i, mid in enumerate(ids)]
        for p in players:
            p.start()
        for p in players:
            while p.is_alive():
                p.join(0.2)
    finally:
        stop.set()
        if power_off_at_end:
            for node in nodes.values():
                node.power_cut()
            for plug in plugs.values():
                plug.power_cut()
        run.report.messages = sum(n.sent for n in nodes.values()) + sum(p.sent for p in plugs.values())
    return run.report


def _plug_creds_for(creds: PlugCreds, plug_id: str) -> tuple[str, str]:
    if isinstance(creds, tuple):
        return creds
    try:
        return creds[plug_id]
    except KeyError:
        raise MissingPlugCredentials(f"no broker user for the plug {plug_id}") from None
