"""Scenarios: what happens in the workshop, as data. Pure: no I/O, no clock, no threads.

A scenario is a list of timed :class:`Action` objects (simulated UTC epoch seconds). The runner
plays them against a broker; :func:`generate_day` builds a deterministic workshop day from a
seed, and tests write small scripts by hand.

Ops and their ``args``:

``tap`` / ``tap_out``  ``uid``; informative: ``artisan`` (id or None), ``expect`` (grant, deny,
                       end), ``reason`` (deny reason, ``handover`` or ``tap_out``), ``case``.
``work``               ``amps`` and ``cycles``: ``[[on_s, off_s], ...]``; the motor runs on_s,
                       rests off_s, and so on. Played only if the relay is on (tap granted).
``walk_away``          the artisan leaves without tapping out: the gateway's idle timeout ends
                       the session. A marker: nothing is sent.
``power_cut``          ``machines``: the listed nodes lose power at once (``machine`` is None).
``power_restore``      ``machines``: power returns, each node boots again.
``fault``              ``code`` (FaultCode), ``active``.
``overheat``           ``peak_c``, ``duration_s``: temperature ramps above the peak for a while.
``silence``            ``duration_s``: the node stays powered but sends nothing (hung radio).

Machines on a metering plug (``Machine.plug``) are played by a plug plus a badge reader node:
``fault``, ``overheat`` and ``silence`` need a custom node, so :func:`generate_day` never
plans them on a plug machine (the runner skips them there and counts them as skipped).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from .workshop import Artisan, Machine, Workshop


class Op(StrEnum):
    TAP = "tap"
    TAP_OUT = "tap_out"
    WORK = "work"
    WALK_AWAY = "walk_away"
    POWER_CUT = "power_cut"
    POWER_RESTORE = "power_restore"
    FAULT = "fault"
    OVERHEAT = "overheat"
    SILENCE = "silence"


MULTI_MACHINE_OPS = (Op.POWER_CUT, Op.POWER_RESTORE)
TAP_OPS = (Op.TAP, Op.TAP_OUT)


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Action:
    at: float  # simulated UTC epoch seconds
    machine: str | None  # None for ops that name their machines in args
    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def machines(self) -> list[str]:
        if self.op in MULTI_MACHINE_OPS:
            return list(self.args.get("machines"))
        return [self.machine] if self.machine else []


# --------------------------------------------------------------------------- day parameters

OPEN_LOCAL = dt.time(7, 30)
CLOSE_LOCAL = dt.time(18, 30)
FIRST_TAP_DELAY_S = (0, 45 * 60)  # machine's first session after opening
ARRIVAL_SPREAD_S = 150 * 60  # artisans arrive within 2.5 h of opening, leave within 2.5 h of closing
SESSION_WORK_S = (20 * 60, 100 * 60)
MOTOR_ON_S = (120, 480)
MOTOR_OFF_S = (60, 300)
START_DELAY_S = (20, 90)  # tap in -> first motor start
TAP_OUT_DELAY_S = (30, 240)  # last motor stop -> tap out
WALK_AWAY_DELAY_S = (10, 60)
GAP_S = (2 * 60, 25 * 60)  # between two sessions on a machine
WALK_AWAY_SHARE = 0.15
# A motor pause stays this far below the idle timeout: a node stamps its motor events with its
# uptime (exact), a plug's are stamped on receipt at the gateway (late by the delivery delay
# and the player's lag, times the clock's speed), so plug machines get a wider margin.
IDLE_MARGIN_S = 90
PLUG_IDLE_MARGIN_S = 240
DENY_BLOCK_S = (60, 180)
ARTISAN_TRANSIT_S = 120  # an artisan needs this long to go from one machine to another
CLOSING_MARGIN_S = 5 * 60  # every session ends this long before closing
MIN_SESSION_ROOM_S = 25 * 60
POWER_CUT_NODES = 3
POWER_CUT_START_LOCAL = dt.time(12, 0)
POWER_CUT_START_SPREAD_S = 90 * 60
POWER_CUT_S = (18 * 60, 22 * 60)
RESUME_AFTER_RESTORE_S = (3 * 60, 7 * 60)
BILLING_INCREMENT_S = 15 * 60  # session lengths stay clear of multiples of this
BILLING_MARGIN_S = 60
OVERHEAT_PEAK_C = 78.5
OVERHEAT_S = (540, 720)
FAULT_S = (120, 300)

AMPS_BY_TYPE = {
    "bandsaw": 6.5, "planer": 9.0, "drill_press": 3.2, "arc_welder": 45.0,
    "metal_lathe": 7.8, "sewing_machine": 1.4, "grain_mill": 14.0,
    "table_saw": 7.8, "bench_grinder": 1.7, "overlocker": 2.4,
}
DEFAULT_AMPS = 5.0

# Special cases of a day and the local time after which each happens (plus jitter).
SPECIALS: tuple[tuple[str, dt.time], ...] = (
    ("walk_away", dt.time(8, 40)),
    ("unknown_badge", dt.time(8, 50)),
    ("not_qualified", dt.time(9, 20)),
    ("machine_in_use", dt.time(9, 40)),
    ("artisan_suspended", dt.time(10, 5)),
    ("handover", dt.time(10, 30)),
    ("badge_revoked", dt.time(10, 50)),
    ("qualification_expired", dt.time(11, 15)),
    ("overheat", dt.time(11, 30)),  # early enough that the grain mill is free some time that day
    ("walk_away", dt.time(14, 30)),
    ("fault", dt.time(16, 0)),
)
# Cases only a custom node can play (a plug reports power and its relay, nothing else).
NODE_ONLY_SPECIALS = ("overheat", "fault")
DENY_SPECIALS = ("unknown_badge", "not_qualified", "artisan_suspended", "badge_revoked",
                 "qualification_expired")


def day_bounds(date: dt.date, tz: str) -> tuple[float, float]:
    """Opening and closing of the workshop on ``date`` as UTC epoch seconds."""
    z = ZoneInfo(tz)
    return (dt.datetime.combine(date, OPEN_LOCAL, z).timestamp(),
            dt.datetime.combine(date, CLOSE_LOCAL, z).timestamp())


def near_billing_step(seconds: float) -> bool:
    r = seconds % BILLING_INCREMENT_S
    return r < BILLING_MARGIN_S or r > BILLING_INCREMENT_S - BILLING_MARGIN_S


def work_events(start: float, cycles: list[list[float]]) -> list[tuple[float, bool]]:
    """The motor start/stop times of a work block starting at ``start``."""
    out: list[tuple[float, bool]] = []
    t = start
    for on_s, off_s in cycles:
        out.append((t, True))
        t += on_s
        out.append((t, False))
        t += off_s
    return out


def work_end(start: float, cycles: list[list[float]]) -> float:
    """When the motor stops for the last time."""
    return start + sum(on + off for on, off in cycles) - (cycles[-1][1] if cycles else 0)


def script(actions: Iterable[Action | dict[str, Any] | tuple]) -> list[Action]:
    """A scripted scenario: Actions, dicts ``{at, machine, op, args}`` or tuples
    ``(at, machine, op[, args])``, checked and put in time order (stable)."""
    out: list[Action] = []
    for i, a in enumerate(actions):
        if isinstance(a, Action):
            act = a
        elif isinstance(a, dict):
            act = Action(float(a["at"]), a.get("machine"), a["op"], dict(a.get("args") or {}))
        else:
            at, machine, op, *rest = a
            act = Action(float(at), machine, op, dict(rest[0]) if rest else {})
        if act.op not in Op.__members__.values():
            raise ScenarioError(f"action {i}: unknown op {act.op!r}")
        if act.op in MULTI_MACHINE_OPS:
            if not act.args.get("machines"):
                raise ScenarioError(f"action {i}: {act.op} needs args.machines")
        elif not act.machine:
            raise ScenarioError(f"action {i}: {act.op} needs a machine")
        if act.op in TAP_OPS and not act.args.get("uid"):
            raise ScenarioError(f"action {i}: {act.op} needs args.uid")
        if act.op == Op.WORK and not act.args.get("cycles"):
            raise ScenarioError(f"action {i}: work needs args.cycles")
        out.append(act)
    return sorted(out, key=lambda a: a.at)


def without_machines(actions: Iterable[Action], machines: Iterable[str]) -> list[Action]:
    """The actions with the given machines left out (also from power cuts and restores): the
    same day for the other machines, e.g. without the plug machines when no plug can play."""
    drop = set(machines)
    out: list[Action] = []
    for a in actions:
        if a.op in MULTI_MACHINE_OPS:
            keep = [m for m in a.args.get("machines", []) if m not in drop]
            if keep:
                out.append(Action(a.at, a.machine, a.op, {**a.args, "machines": keep}))
        elif a.machine not in drop:
            out.append(a)
    return out


def check_machines(actions: Iterable[Action], workshop: Workshop) -> None:
    known = {m.id for m in workshop.machines}
    for a in actions:
        for m in a.machines():
            if m not in known:
                raise ScenarioError(f"unknown machine {m!r} at {a.at}")


# --------------------------------------------------------------------------- the day generator


@dataclass
class _Block:
    actions: list[Action]
    machine_free_at: float


class _DayPlanner:
    def __init__(self, workshop: Workshop, date: dt.date, tz: str, seed: int | str):
        self.w = workshop
        self.date = date
        self.rng = random.Random(f"crp-day:{seed}:{date.isoformat()}")
        self.open_ts, self.close_ts = day_bounds(date, tz)
        self.last_end = self.close_ts - CLOSING_MARGIN_S
        z = ZoneInfo(tz)
        r = self.rng
        self.machines = sorted(workshop.machines, key=lambda m: m.id)
        self.usable = [a for a in sorted(workshop.artisans, key=lambda a: a.id)
                       if a.status == "active" and a.active_badges]
        self.presence = {a.id: (self.open_ts + r.randint(0, ARRIVAL_SPREAD_S),
                                self.close_ts - r.randint(0, ARRIVAL_SPREAD_S)) for a in self.usable}
        self.busy: dict[int, list[tuple[float, float]]] = {a.id: [] for a in workshop.artisans}
        self.uids = {b.uid for a in workshop.artisans for b in a.badges}
        # Power cut: three nodes for about twenty minutes in the middle of the day.
        cut_base = dt.datetime.combine(date, POWER_CUT_START_LOCAL, z).timestamp()
        self.cut_at = float(cut_base + r.randint(0, POWER_CUT_START_SPREAD_S))
        self.restore_at = float(self.cut_at + r.randint(*POWER_CUT_S))
        n_cut = min(POWER_CUT_NODES, len(self.machines))
        self.cut_machines = sorted(m.id for m in r.sample(self.machines, n_cut))
        self.resume: dict[str, int] = {}  # machine -> artisan who resumes after the cut
        self.specials: list[tuple[float, str]] = []
        for name, local in SPECIALS:
            at = dt.datetime.combine(date, local, z).timestamp() + r.randint(0, 15 * 60)
            if any(self._special_applies(name, m) for m in self.machines):
                self.specials.append((float(at), name))
        self.actions: list[Action] = []

    # -- who can do what

    def _qualified(self, m: Machine) -> list[Artisan]:
        return [a for a in self.usable if a.qualified_for(m.type, self.date)]

    def _free(self, a: Artisan, start: float, end: float) -> bool:
        arrive, leave = self.presence.get(a.id, (self.open_ts, self.close_ts))
        if start < arrive or end > leave:
            return False
        return all(end + ARTISAN_TRANSIT_S <= s or start >= e + ARTISAN_TRANSIT_S for s, e in self.busy[a.id])

    def _pick(self, candidates: list[Artisan], start: float, end: float, exclude: tuple[int, ...] = ()) -> Artisan | None:
        ok = [a for a in candidates if a.id not in exclude and self._free(a, start, end)]
        return self.rng.choice(ok) if ok else None

    def _special_applies(self, name: str, m: Machine) -> bool:
        if m.plug is not None and name in NODE_ONLY_SPECIALS:
            return False  # a metering plug has no fault input and no temperature sensor
        if name == "qualification_expired":
            return any(a.status == "active" and a.active_badges and not a.qualified_for(m.type, self.date)
                       and any(q.type == m.type for q in a.qualifications) for a in self.w.artisans)
        if name == "overheat":
            return m.type == "grain_mill" or not any(x.type == "grain_mill" for x in self.w.machines)
        if name == "artisan_suspended":
            return any(a.status == "suspended" and a.active_badges for a in self.w.artisans)
        if name == "badge_revoked":
            return any(b.status == "revoked" for a in self.w.artisans for b in a.badges)
        return True

    # -- building blocks

    def _tap(self, at: float, m: Machine, uid: str, artisan: int | None, expect: str,
             reason: str | None, case: str, op: str = Op.TAP) -> Action:
        return Action(float(at), m.id, op, {"uid": uid, "artisan": artisan, "expect": expect,
                                            "reason": reason, "case": case})

    def _cycles(self, m: Machine, work_s: float, first_on_min: int = 0) -> list[list[float]]:
        idle = self.w.machine_type(m.type).idle_timeout_s
        off_hi = min(MOTOR_OFF_S[1], idle - (PLUG_IDLE_MARGIN_S if m.plug is not None else IDLE_MARGIN_S))
        cycles: list[list[float]] = []
        total = 0
        while total < work_s or not cycles:
            lo = max(MOTOR_ON_S[0], first_on_min) if not cycles else MOTOR_ON_S[0]
            on = self.rng.randint(lo, max(lo, MOTOR_ON_S[1]))
            off = self.rng.randint(min(MOTOR_OFF_S[0], off_hi), off_hi)
            cycles.append([float(on), float(off)])
            total += on + off
        cycles[-1][1] = 0.0
        return cycles

    def _work(self, at: float, m: Machine, cycles: list[list[float]]) -> Action:
        return Action(float(at), m.id, Op.WORK, {"amps": AMPS_BY_TYPE.get(m.type, DEFAULT_AMPS),
                                                 "cycles": [list(c) for c in cycles]})

    def _session(self, m: Machine, t: float, a: Artisan | None, end: str, case: str = "session",
                 first_on_min: int = 0, work_s: float | None = None) -> tuple[list[Action], float, float, float, list[list[float]]] | None:
        """Tap in, a work block, then tap out or walk away. Returns (actions, start of work,
        artisan leaves, machine free, cycles) or None when nobody can do it."""
        r = self.rng
        idle = self.w.machine_type(m.type).idle_timeout_s
        room = self.last_end - t
        if room < MIN_SESSION_ROOM_S:
            return None
        work_s = work_s or r.randint(*SESSION_WORK_S)
        work_s = min(work_s, room - idle - 10 * 60)
        if work_s < 5 * 60:
            return None
        w0 = t + r.randint(*START_DELAY_S)
        cycles = self._cycles(m, work_s, first_on_min)
        tail = r.randint(*(TAP_OUT_DELAY_S if end == "tap_out" else WALK_AWAY_DELAY_S))
        tail = min(tail, idle - 60)
        for _ in range(50):  # keep badge time and run time clear of billing steps
            run_s = sum(c[0] for c in cycles)
            stop = work_end(w0, cycles)
            session_end = stop + (tail if end == "tap_out" else idle)
            if near_billing_step(run_s):
                cycles[-1][0] += 37
            elif near_billing_step(session_end - t):
                if end == "tap_out" and tail + 53 < idle - 30:
                    tail += 53
                else:
                    cycles[-1][0] += 53
            else:
                break
        else:
            return None
        stop = work_end(w0, cycles)
        leave = stop + tail
        machine_free = leave if end == "tap_out" else stop + idle + 60
        if machine_free > self.last_end:
            return None
        if a is None:
            a = self._pick(self._qualified(m), t, leave)
            if a is None:
                return None
        elif not self._free(a, t, leave):
            return None
        uid = a.active_badges[0].uid
        acts = [self._tap(t, m, uid, a.id, "grant", None, case), self._work(w0, m, cycles)]
        if end == "tap_out":
            acts.append(self._tap(leave, m, uid, a.id, "end", "tap_out", "tap_out", op=Op.TAP_OUT))
        else:
            acts.append(Action(float(leave), m.id, Op.WALK_AWAY, {"artisan": a.id}))
        self._hold(a.id, t, leave)
        return acts, w0, leave, machine_free, cycles

    def _hold(self, artisan: int, start: float, end: float) -> None:
        self.busy[artisan].append((start, end))

    def _deny(self, m: Machine, t: float, name: str) -> tuple[list[Action], float] | None:
        r = self.rng
        end = t + r.randint(*DENY_BLOCK_S)
        if name == "unknown_badge":
            while True:
                uid = "".join(r.choice("0123456789ABCDEF") for _ in range(8))
                if uid not in self.uids:
                    break
            return [self._tap(t, m, uid, None, "deny", "unknown_badge", name)], end
        if name == "not_qualified":
            cands = [a for a in self.usable if not any(q.type == m.type for q in a.qualifications)]
            a = self._pick(cands, t, t + 60)
            if a is None:
                return None
            self._hold(a.id, t, t + 60)
            return [self._tap(t, m, a.active_badges[0].uid, a.id, "deny", "not_qualified", name)], end
        if name == "qualification_expired":
            cands = [a for a in self.usable if not a.qualified_for(m.type, self.date)
                     and any(q.type == m.type for q in a.qualifications)]
            a = self._pick(cands, t, t + 60)
            if a is None:
                return None
            self._hold(a.id, t, t + 60)
            return [self._tap(t, m, a.active_badges[0].uid, a.id, "deny", "qualification_expired", name)], end
        if name == "artisan_suspended":
            sus = [a for a in self.w.artisans if a.status == "suspended" and a.active_badges]
            a = r.choice(sus)
            return [self._tap(t, m, a.active_badges[0].uid, a.id, "deny", "artisan_suspended", name)], end
        if name == "badge_revoked":
            owners = [(a, b) for a in self.w.artisans for b in a.badges if b.status == "revoked"]
            a, b = r.choice(owners)
            if a.id in self.presence and not self._free(a, t, t + 60):
                return None
            self._hold(a.id, t, t + 60)
            return [self._tap(t, m, b.uid, a.id, "deny", "badge_revoked", name)], end
        raise AssertionError(name)

    def _block(self, m: Machine, t: float, special: str | None) -> _Block | None:
        r = self.rng
        if special in DENY_SPECIALS:
            d = self._deny(m, t, special)
            return None if d is None else _Block(d[0], d[1])
        if special == "fault":
            t2 = t + r.randint(*FAULT_S)
            if t2 + 60 > self.last_end:
                return None
            return _Block([Action(float(t), m.id, Op.FAULT, {"code": "estop", "active": True}),
                           Action(float(t2), m.id, Op.FAULT, {"code": "estop", "active": False})], t2 + 60)
        if special == "walk_away":
            s = self._session(m, t, None, "walk_away")
            return None if s is None else _Block(s[0], s[3])
        if special == "overheat":
            dur = r.randint(*OVERHEAT_S)
            s = self._session(m, t, None, "tap_out", work_s=dur + r.randint(10 * 60, 30 * 60))
            if s is None:
                return None
            acts, w0 = s[0], s[1]
            acts.append(Action(float(w0 + 60), m.id, Op.OVERHEAT, {"peak_c": OVERHEAT_PEAK_C, "duration_s": dur}))
            return _Block(acts, s[3])
        if special == "machine_in_use":
            s = self._session(m, t, None, "tap_out", first_on_min=300)
            if s is None:
                return None
            acts, w0, cycles = s[0], s[1], s[4]
            tap_at = w0 + r.randint(60, int(cycles[0][0]) - 60)
            holder = acts[0].args["artisan"]
            c = self._pick(self._qualified(m), tap_at, tap_at + 60, exclude=(holder,))
            if c is None:
                return None
            self._hold(c.id, tap_at, tap_at + 60)
            acts.append(self._tap(tap_at, m, c.active_badges[0].uid, c.id, "deny", "machine_in_use", "machine_in_use"))
            return _Block(acts, s[3])
        if special == "handover":
            return self._handover(m, t)
        s = self._session(m, t, None, "walk_away" if r.random() < WALK_AWAY_SHARE else "tap_out")
        return None if s is None else _Block(s[0], s[3])

    def _handover(self, m: Machine, t: float) -> _Block | None:
        r = self.rng
        idle = self.w.machine_type(m.type).idle_timeout_s
        quals = self._qualified(m)
        w0 = t + r.randint(*START_DELAY_S)
        cycles = self._cycles(m, r.randint(15 * 60, 45 * 60))
        stop = work_end(w0, cycles)
        tb = stop + r.randint(60, min(240, idle - 60))
        for _ in range(50):
            if not (near_billing_step(tb - t) or near_billing_step(sum(c[0] for c in cycles))):
                break
            tb += 41
            cycles[-1][0] += 41
            stop = work_end(w0, cycles)
        else:
            return None
        if tb >= stop + idle - 30:
            return None
        a = self._pick(quals, t, tb)
        if a is None:
            return None
        self._hold(a.id, t, tb)
        # B takes over the idle machine, works and taps out.
        b = None
        cands = [x for x in quals if x.id != a.id and self._free(x, tb, tb + 60)]
        r.shuffle(cands)
        for cand in cands:
            s = self._session(m, tb, cand, "tap_out", case="handover")
            if s is not None:
                b = cand
                break
        if b is None:
            return None
        acts_b = s[0]
        acts_b[0] = self._tap(tb, m, b.active_badges[0].uid, b.id, "grant", "handover", "handover")
        acts = [self._tap(t, m, a.active_badges[0].uid, a.id, "grant", None, "handover_from"),
                self._work(w0, m, cycles)] + acts_b
        return _Block(acts, s[3])

    def _interrupted(self, m: Machine, t: float) -> _Block | None:
        """A session under way when the power goes: the motor is still running at the cut; the
        artisan comes back after the restore and taps in again."""
        r = self.rng
        w0 = t + r.randint(*START_DELAY_S)
        cycles = self._cycles(m, max(60, self.cut_at - w0 + 600))
        kept: list[list[float]] = []
        start = w0
        for on, off in cycles:
            if start >= self.cut_at - 30:
                break
            if start + on + off >= self.cut_at:
                kept.append([float(self.cut_at - start + 30), 0.0])  # still running at the cut
                break
            kept.append([on, off])
            start += on + off
        resume_at = self.restore_at + r.randint(*RESUME_AFTER_RESTORE_S)
        a = self._pick(self._qualified(m), t, resume_at)
        if a is None or not kept:
            return None
        self._hold(a.id, t, self.restore_at)
        self.resume[m.id] = a.id
        uid = a.active_badges[0].uid
        return _Block([self._tap(t, m, uid, a.id, "grant", None, "power_cut"), self._work(w0, m, kept)],
                      resume_at)

    # -- the day

    def build(self) -> list[Action]:
        r = self.rng
        heap = sorted((self.open_ts + r.randint(*FIRST_TAP_DELAY_S), i) for i, _ in enumerate(self.machines))
        self.actions.append(Action(self.cut_at, None, Op.POWER_CUT, {"machines": list(self.cut_machines)}))
        self.actions.append(Action(self.restore_at, None, Op.POWER_RESTORE, {"machines": list(self.cut_machines)}))
        while heap:
            heap.sort()
            t, i = heap.pop(0)
            t = float(int(t))
            m = self.machines[i]
            if t > self.last_end - MIN_SESSION_ROOM_S:
                continue
            cut = m.id in self.cut_machines
            if cut and self.cut_at - 120 <= t < self.restore_at + 60:
                heap.append((self.restore_at + r.randint(120, 420), i))
                continue
            if cut and m.id in self.resume:
                artisan = self.w.artisan(self.resume.pop(m.id))
                s = self._session(m, t, artisan, "tap_out", case="resume_after_power_cut")
                if s is not None:
                    self.actions.extend(s[0])
                    heap.append((s[3] + r.randint(*GAP_S), i))
                    continue
            special = next((sp for sp in self.specials if sp[0] <= t and self._special_applies(sp[1], m)), None)
            block = None
            for kind in ([special[1]] if special else []) + [None]:
                mark = self._mark()
                block = self._block(m, t, kind)
                if block is not None and cut and t < self.cut_at and self._overlaps_cut(block):
                    # This machine loses power during the block: play a session cut short instead.
                    self._restore(mark)
                    block = self._interrupted(m, t)
                    if block is not None:
                        break
                elif block is not None:
                    if kind is not None:
                        self.specials.remove(special)
                    break
                self._restore(mark)
            if block is None:
                heap.append((t + r.randint(5 * 60, 15 * 60), i))
                continue
            self.actions.extend(block.actions)
            gap = 0 if m.id in self.resume else r.randint(*GAP_S)
            heap.append((block.machine_free_at + gap, i))
        order = {op: n for n, op in enumerate(Op)}
        return sorted(self.actions, key=lambda a: (a.at, a.machine or "", order[Op(a.op)]))

    def _overlaps_cut(self, block: _Block) -> bool:
        return block.machine_free_at > self.cut_at - 60

    def _mark(self) -> dict[int, int]:
        return {k: len(v) for k, v in self.busy.items()}

    def _restore(self, mark: dict[int, int]) -> None:
        """Forget the artisans' time booked by a block that is thrown away."""
        for k, n in mark.items():
            del self.busy[k][n:]


def generate_day(workshop: Workshop, date: dt.date, seed: int | str, tz: str | None = None) -> list[Action]:
    """A deterministic workshop day between opening and closing: the same inputs give the same
    list. Besides ordinary sessions it contains an unknown badge, an unqualified artisan, the
    suspended artisan, a revoked badge, an expired qualification (if the workshop has one), a
    tap on a machine whose motor runs, a handover on an idle machine, walk-aways ended by the
    idle timeout, an overheat, an emergency stop and a power cut of three nodes."""
    return _DayPlanner(workshop, date, tz or workshop.site.tz, seed).build()
