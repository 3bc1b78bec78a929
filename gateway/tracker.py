"""The gateway's live view of the workshop: a pure, event-sourced state machine.

Inputs are node messages (already validated and time-stamped on the gateway's clock) and clock
ticks; outputs are *facts* (gateway events: decisions, session open/close, machine state
changes) plus *commands* for nodes (decision replies, relay off). Every fact is applied to the
state through :meth:`Tracker.apply`, the same method a restarted gateway uses to replay its
spool, so the state after a restart is exactly the state before it.

No I/O and no clock here: the service passes times in and sends what comes out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from crp_common.contract import CRITICAL_FAULTS, EndReason, Kind, MachineState
from crp_common.events import GatewayKind
from crp_common.i18n import tr
from crp_common.rules import AuthIndex, MachineLive, decide
from crp_common.snapshot import DEFAULT_IDLE_TIMEOUT_S

from .conditions import ConditionMonitor

# A node silent this long (while the gateway itself is connected) is offline.
OFFLINE_AFTER_S = 150.0
# After the gateway (re)connects, wait this long before judging silence or idleness: the broker
# first hands over what it queued while the gateway was away.
RECONNECT_GRACE_S = 30.0
# connected_since_ms while the gateway is cut off from the broker: tick() judges nothing.
DISCONNECTED = 2**62

# Kinds the condition monitor watches (telemetry rules and fault codes).
WATCHED_KINDS = frozenset({Kind.TEMP, Kind.VIB, Kind.CURRENT, Kind.FAULT})


@dataclass
class Fact:
    """A gateway event to record (and forward): kind, machine, time, body."""

    kind: str
    machine: str | None
    t: int
    body: dict[str, Any]


@dataclass
class Command:
    """Something to publish to a node: ``decision`` or ``cmd`` payload fields."""

    machine: str
    downlink: str  # "decision" | "cmd"
    payload: dict[str, Any]


@dataclass
class Output:
    facts: list[Fact] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    def extend(self, other: "Output") -> None:
        self.facts.extend(other.facts)
        self.commands.extend(other.commands)


@dataclass
class OpenSession:
    id: str
    artisan: int
    uid: str
    start_ms: int
    name: str = ""


@dataclass
class LiveMachine:
    id: str
    node: str | None = None
    boot: int | None = None
    online: bool = False
    last_alive_ms: int | None = None
    relay: bool = False
    motor: bool = False
    last_activity_ms: int | None = None  # last motor edge
    faults: list[str] = field(default_factory=list)
    cond_locks: list[str] = field(default_factory=list)  # critical conditions holding now
    session: OpenSession | None = None
    state: str = MachineState.OFFLINE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LiveMachine":
        d = dict(d)
        s = d.pop("session", None)
        m = cls(**d)
        m.session = OpenSession(**s) if s else None
        return m


def session_id(machine: str, node: str, boot: int, seq: int) -> str:
    """A session is named after the badge request that opened it: deterministic, so a request
    re-decided after a gateway crash opens the same session, never a second one."""
    return f"{machine}:{node}:{boot}:{seq}"


class Tracker:
    def __init__(self, auth: AuthIndex | None, tz: str = "Africa/Dakar", lang: str = "fr"):
        self.auth = auth
        self.tz = ZoneInfo(tz)
        self.lang = lang
        self.machines: dict[str, LiveMachine] = {}
        self.connected_since_ms: int = DISCONNECTED  # set by the service when MQTT connects
        self.cmd_seq = 0
        self.conditions = ConditionMonitor()
        self.offline_after_ms = int(OFFLINE_AFTER_S * 1000)
        # Machines whose presence is judged by their Last Will only, never by silence
        # (metering plugs report on change or at long intervals).
        self.presence_by_lwt: set[str] = set()
        if auth is not None:
            self._set_rules(auth, None)

    def _set_rules(self, auth: AuthIndex, t_ms: int | None) -> list[Fact]:
        facts = []
        for mid, sm in auth.machines.items():
            for b in self.conditions.set_rules(mid, sm.conditions, t_ms):
                t = b.pop("t")
                facts.append(Fact(GatewayKind.ALERT, mid, t, b))
        return facts

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        return {"machines": {k: m.to_dict() for k, m in self.machines.items()}, "cmd_seq": self.cmd_seq,
                "conditions": self.conditions.to_dict()}

    def load(self, d: dict[str, Any]) -> None:
        self.machines = {k: LiveMachine.from_dict(v) for k, v in d.get("machines", {}).items()}
        self.cmd_seq = int(d.get("cmd_seq", 0))
        self.conditions.load(d.get("conditions", {}))
        if self.auth is not None:
            self._set_rules(self.auth, None)  # the rules of the snapshot in force win

    # ------------------------------------------------------------------ helpers

    def machine(self, mid: str) -> LiveMachine:
        m = self.machines.get(mid)
        if m is None:
            m = self.machines[mid] = LiveMachine(mid)
        return m

    def _idle_timeout_ms(self, mid: str) -> int:
        sm = self.auth.machines.get(mid) if self.auth else None
        return 1000 * (sm.idle_timeout_s if sm else DEFAULT_IDLE_TIMEOUT_S)

    def _locked(self, mid: str) -> bool:
        sm = self.auth.machines.get(mid) if self.auth else None
        return bool(sm and sm.locked)

    def derive_state(self, m: LiveMachine) -> str:
        if not m.online:
            return MachineState.OFFLINE
        if self._locked(m.id):
            return MachineState.MAINTENANCE
        if (m.faults and not CRITICAL_FAULTS.isdisjoint(m.faults)) or m.cond_locks:
            return MachineState.FAULT
        if m.session is not None:
            return MachineState.IN_USE
        return MachineState.AVAILABLE

    def _state_fact(self, m: LiveMachine, t: int, cause: str) -> list[Fact]:
        new = self.derive_state(m)
        if new == m.state:
            return []
        return [Fact(GatewayKind.STATE, m.id, t, {"state": str(new), "cause": cause})]

    def _close(self, m: LiveMachine, at: int, reason: str) -> list[Fact]:
        s = m.session
        if s is None:
            return []
        return [Fact(GatewayKind.SESSION_CLOSE, m.id, max(at, s.start_ms), {"session": s.id, "reason": str(reason)})]

    def _cmd_id(self) -> str:
        self.cmd_seq += 1
        return f"c{self.cmd_seq}"

    # ------------------------------------------------------------------ applying facts

    def apply(self, f: Fact) -> None:
        """Apply a recorded fact to the state (live, or when replaying the spool)."""
        if f.machine is None:
            return
        m = self.machine(f.machine)
        if f.kind == GatewayKind.SESSION_OPEN:
            m.session = OpenSession(
                id=f.body["session"], artisan=int(f.body["artisan"]), uid=f.body.get("uid", ""),
                start_ms=f.t, name=f.body.get("name", ""),
            )
            if m.last_activity_ms is None or m.last_activity_ms < f.t:
                m.last_activity_ms = f.t
        elif f.kind == GatewayKind.SESSION_CLOSE:
            if m.session is not None and m.session.id == f.body.get("session"):
                m.session = None
        elif f.kind == GatewayKind.STATE:
            m.state = f.body.get("state", m.state)

    def _emit(self, out: Output, facts: list[Fact]) -> None:
        for f in facts:
            self.apply(f)
            out.facts.append(f)

    # ------------------------------------------------------------------ node messages

    def observe(self, kind: str, mid: str, node: str, boot: int, body: dict[str, Any], t: int) -> Output:
        """A node message, in arrival order. ``body`` is the message without its header."""
        out = Output()
        m = self.machine(mid)
        is_lwt = kind == Kind.STATUS and body.get("state") == "offline"
        if is_lwt:
            if m.boot is None or boot == m.boot:
                self._power_lost(m, out, cause="lwt")
            return out
        if m.node == node and m.boot is not None and boot < m.boot:
            return out  # a late message from an earlier boot: recorded, but it changes nothing now
        if m.boot is not None and (node != m.node or boot != m.boot) and (m.online or m.session is not None):
            # A new boot: the node lost power. Close at its last sign of life, not now.
            self._power_lost(m, out, cause="reboot")
        if m.boot != boot or m.node != node:
            m.motor = False
            m.relay = False
        m.node, m.boot = node, boot
        m.last_alive_ms = t if m.last_alive_ms is None else max(m.last_alive_ms, t)
        m.online = True
        if kind == Kind.MOTOR:
            m.motor = bool(body.get("running"))
            m.last_activity_ms = t
        elif kind == Kind.RELAY:
            m.relay = bool(body.get("on"))
        elif kind == Kind.HEARTBEAT:
            m.relay = bool(body.get("relay", m.relay))
        elif kind == Kind.FAULT:
            code = str(body.get("code"))
            if body.get("active"):
                if code not in m.faults:
                    m.faults.append(code)
                if code in CRITICAL_FAULTS and m.session is not None:
                    self._emit(out, self._close(m, t, EndReason.FAULT))
                    out.commands.append(self._relay_off(mid, "fault"))
            elif code in m.faults:
                m.faults.remove(code)
        if kind in WATCHED_KINDS:
            self._conditions(m, kind, body, t, out)
        self._emit(out, self._state_fact(m, t, kind))
        return out

    def _conditions(self, m: LiveMachine, kind: str, body: dict[str, Any], t: int, out: Output) -> None:
        """Telemetry rules and fault codes: alert facts; a critical condition stops the machine
        and refuses badges while it holds (the lock awaiting a technician is the server's)."""
        for b in self.conditions.observe(m.id, kind, body, t):
            at = b.pop("t")
            self._emit(out, [Fact(GatewayKind.ALERT, m.id, at, b)])
            if b.get("kind") != "condition":
                continue
            cause = str(b.get("cause"))
            if b.get("state") == "raised" and b.get("critical"):
                if cause not in m.cond_locks:
                    m.cond_locks.append(cause)
                if m.session is not None:
                    self._emit(out, self._close(m, at, EndReason.FAULT))
                    out.commands.append(self._relay_off(m.id, "fault"))
            elif b.get("state") == "cleared" and cause in m.cond_locks:
                m.cond_locks.remove(cause)

    def _power_lost(self, m: LiveMachine, out: Output, cause: str) -> None:
        at = m.last_alive_ms if m.last_alive_ms is not None else 0
        if m.session is not None:
            self._emit(out, self._close(m, at, EndReason.POWER_LOSS))
        m.online = False
        m.motor = False
        m.relay = False
        self._emit(out, self._state_fact(m, at, cause))

    def _relay_off(self, mid: str, reason: str) -> Command:
        return Command(mid, "cmd", {"id": self._cmd_id(), "cmd": "relay_off", "reason": reason,
                                    "text": tr(f"end.{reason}", self.lang, name="")[:64]})

    def badge(self, mid: str, node: str, boot: int, seq: int, uid: str, t: int) -> Output:
        """A badge request (already observed). Decides, records, and answers the node."""
        out = Output()
        m = self.machine(mid)
        idle_closed = self._expire_idle(m, t, out)
        if self.auth is None:
            from crp_common.rules import Decision

            d = Decision("deny", "unknown_machine")
        else:
            live = MachineLive(
                session_artisan=m.session.artisan if m.session else None,
                motor_running=m.motor,
                fault=any(f in CRITICAL_FAULTS for f in m.faults) or bool(m.cond_locks),
            )
            local_date = dt.datetime.fromtimestamp(t / 1000, dt.timezone.utc).astimezone(self.tz).date()
            d = decide(self.auth, mid, uid, live, local_date)
        artisan = d.artisan
        req = {"node": node, "boot": boot, "seq": seq}
        name = artisan.name.split(" ")[0] if artisan else ""
        self._emit(out, [Fact(GatewayKind.DECISION, mid, t, {
            "uid": uid, "artisan": artisan.id if artisan else None, "result": d.result,
            "reason": str(d.reason) if d.reason else None, "req": req,
        })])
        if d.result == "deny":
            text = tr(f"deny.{d.reason}", self.lang)
        elif d.result == "end":
            text = tr("end.tap_out", self.lang, name=name)
            self._emit(out, self._close(m, t, EndReason.TAP_OUT))
        else:
            text = tr("grant", self.lang, name=name)
            assert artisan is not None
            if m.session is not None:
                self._emit(out, self._close(m, t, EndReason.HANDOVER))
            self._emit(out, [Fact(GatewayKind.SESSION_OPEN, mid, t, {
                "session": session_id(mid, node, boot, seq), "artisan": artisan.id, "uid": uid,
                "name": artisan.name, "req": req,
            })])
        if idle_closed and d.result != "grant":
            out.commands.append(self._relay_off(mid, "idle"))
        self._emit(out, self._state_fact(m, t, "badge"))
        out.commands.append(Command(mid, "decision", {
            "boot": boot, "req": seq, "result": d.result,
            "reason": str(d.reason) if d.reason else None,
            "artisan": name[:32] or None, "text": text[:64],
        }))
        return out

    def expired_badge(self, mid: str, node: str, boot: int, seq: int, uid: str, t: int) -> Output:
        """A badge request that reached the gateway too late to matter (the node stopped
        waiting): recorded, not decided, not answered."""
        out = Output()
        self._emit(out, [Fact(GatewayKind.DECISION, mid, t, {
            "uid": uid, "artisan": None, "result": "expired", "reason": None,
            "req": {"node": node, "boot": boot, "seq": seq}})])
        return out

    # ------------------------------------------------------------------ time

    def _expire_idle(self, m: LiveMachine, t: int, out: Output) -> bool:
        """Close ``m``'s session as idle if its idle deadline passed before ``t``, as the timer
        would have (late after a reconnection, while the broker's backlog arrives, or between
        two ticks): a tap's outcome must not depend on when the timer last ran."""
        s = m.session
        if s is None or m.motor or self._locked(m.id):
            return False
        deadline = max(m.last_activity_ms or s.start_ms, s.start_ms) + self._idle_timeout_ms(m.id)
        if t < deadline:
            return False
        self._emit(out, self._close(m, deadline, EndReason.IDLE))
        return True

    def tick(self, now_ms: int) -> Output:
        """Idle timeouts, silent nodes and locks, judged at ``now_ms`` on the gateway clock."""
        out = Output()
        if now_ms < self.connected_since_ms + RECONNECT_GRACE_S * 1000:
            return out
        for m in list(self.machines.values()):
            if m.online and m.last_alive_ms is not None and m.id not in self.presence_by_lwt:
                silent_since = max(m.last_alive_ms, self.connected_since_ms)
                if now_ms - silent_since > self.offline_after_ms:
                    self._power_lost(m, out, cause="silent")
                    continue
            s = m.session
            if s is not None:
                if self._locked(m.id):
                    self._emit(out, self._close(m, now_ms, EndReason.LOCKOUT))
                    out.commands.append(self._relay_off(m.id, "lockout"))
                elif self._expire_idle(m, now_ms, out):
                    out.commands.append(self._relay_off(m.id, "idle"))
            self._emit(out, self._state_fact(m, now_ms, "tick"))
        return out

    def snapshot_changed(self, auth: AuthIndex, now_ms: int) -> Output:
        self.auth = auth
        out = Output()
        self._emit(out, self._set_rules(auth, now_ms))
        for m in self.machines.values():
            self._emit(out, self._state_fact(m, now_ms, "snapshot"))
        return out
