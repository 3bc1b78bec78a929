"""Sessions from events: a pure, deterministic fold.

The gateway decides live (it opens and closes sessions and says why); the server folds the
stored events into the sessions of record. Events are sorted by ``(t, source, boot, seq)`` and
deduplicated on that key and on the session id, so the same events, duplicated or arriving in
another order, always give the same sessions.

Rules:
- ``session_open`` opens a session (its id is the badge request's key, so a re-decided request
  after a gateway restart opens the same session, not a second one);
- ``session_close`` closes it at ``t`` with the gateway's reason (tap_out, idle, handover,
  power_loss, lockout, fault);
- if the machine's node reboots or goes offline while a session is open and no close came, the
  session is closed at the node's last sign of life with ``power_loss`` (never at the reboot);
- motor run time is the overlap of the node's motor-on intervals with the session; a motor-on
  interval ends at motor off, or at the node's last sign of life when it lost power;
- energy (``energy`` readings, a cumulative Wh counter, e.g. from a metering plug): the
  difference between two consecutive readings of the same ``(source, boot)`` is spread evenly
  over the time between them and each session gets its overlap. A counter that goes backwards
  (reset after a power cut) starts afresh from that reading: it never yields negative energy.
  ``energy_wh`` is None when the machine sent no energy reading at all.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from .contract import UPLINK, EndReason
from .events import GatewayKind


@dataclass(frozen=True)
class FoldEvent:
    t: int
    source: str
    boot: int
    seq: int
    kind: str
    machine: str | None
    body: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> tuple[int, str, int, int]:
        return (self.t, self.source, self.boot, self.seq)


@dataclass
class SessionRecord:
    id: str
    machine: str
    artisan: int | None
    uid: str | None
    start_ms: int
    end_ms: int | None = None
    end_reason: str | None = None
    run_ms: int = 0
    last_ms: int = 0  # latest time this session is known to have been alive
    energy_wh: float | None = None  # None: the machine reports no energy

    @property
    def open(self) -> bool:
        return self.end_ms is None

    @property
    def badge_ms(self) -> int:
        return (self.end_ms if self.end_ms is not None else self.last_ms) - self.start_ms


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


ENERGY_DECIMALS = 3


def energy_segments(readings: Iterable[tuple[int, str, int, float]]) -> list[tuple[int, int, float]]:
    """``(t, source, boot, wh)`` counter readings in time order -> ``(t0, t1, delta_wh)``
    segments between consecutive readings of one counter. A new ``(source, boot)`` or a
    counter going backwards starts a new baseline: no segment, never a negative delta."""
    out: list[tuple[int, int, float]] = []
    last: tuple[int, str, int, float] | None = None
    for t, source, boot, wh in readings:
        if last is not None and (last[1], last[2]) == (source, boot) and wh >= last[3]:
            if wh > last[3]:
                out.append((last[0], t, wh - last[3]))
        last = (t, source, boot, wh)
    return out


def energy_in(segments: list[tuple[int, int, float]], start: int, end: int) -> float:
    """The energy of ``segments`` that falls in ``[start, end]``, spread evenly in each segment."""
    total = 0.0
    for t0, t1, wh in segments:
        if t1 <= t0:
            if start <= t1 <= end:
                total += wh
        else:
            total += wh * _overlap(t0, t1, start, end) / (t1 - t0)
    return round(total, ENERGY_DECIMALS)


def derive_sessions(events: Iterable[FoldEvent]) -> list[SessionRecord]:
    by_machine: dict[str, list[FoldEvent]] = defaultdict(list)
    seen: set[tuple[str, int, int]] = set()
    for e in events:
        k = (e.source, e.boot, e.seq)
        if e.machine is None or k in seen:
            continue
        seen.add(k)
        by_machine[e.machine].append(e)
    out: list[SessionRecord] = []
    for machine, evs in by_machine.items():
        evs.sort(key=lambda e: e.key)
        out.extend(_fold_machine(machine, evs))
    out.sort(key=lambda s: (s.start_ms, s.machine, s.id))
    return out


def _fold_machine(machine: str, evs: list[FoldEvent]) -> list[SessionRecord]:
    sessions: dict[str, SessionRecord] = {}
    current: SessionRecord | None = None
    motor_since: int | None = None
    intervals: list[tuple[int, int]] = []
    node_boot: tuple[str, int] | None = None
    last_alive: int | None = None
    readings: list[tuple[int, str, int, float]] = []

    def close(s: SessionRecord, at: int, reason: str) -> None:
        s.end_ms = max(at, s.start_ms)
        s.end_reason = reason

    def lost_power() -> None:
        nonlocal motor_since, current
        at = last_alive if last_alive is not None else 0
        if motor_since is not None:
            intervals.append((motor_since, max(at, motor_since)))
            motor_since = None
        if current is not None and current.open:
            close(current, max(at, current.start_ms), EndReason.POWER_LOSS)
            current = None

    for e in evs:
        if e.kind in UPLINK:  # a node message
            this_boot = (e.source, e.boot)
            is_lwt = e.kind == "status" and e.body.get("state") == "offline"
            if node_boot is not None and this_boot != node_boot and e.boot > node_boot[1]:
                lost_power()  # a new boot: the old one died at its last sign of life
            if is_lwt:
                if node_boot is None or this_boot == node_boot:
                    lost_power()
                continue
            node_boot = this_boot
            last_alive = e.t
            if current is not None:
                current.last_ms = max(current.last_ms, e.t)
            if e.kind == "energy":
                wh = e.body.get("wh")
                if isinstance(wh, (int, float)) and not isinstance(wh, bool) and wh >= 0:
                    readings.append((e.t, e.source, e.boot, float(wh)))
            if e.kind == "motor":
                if e.body.get("running"):
                    if motor_since is None:
                        motor_since = e.t
                elif motor_since is not None:
                    intervals.append((motor_since, e.t))
                    motor_since = None
        elif e.kind == GatewayKind.SESSION_OPEN:
            sid = str(e.body.get("session", ""))
            if not sid or sid in sessions:
                continue
            if current is not None and current.open:
                close(current, e.t, EndReason.HANDOVER)
            current = SessionRecord(
                id=sid,
                machine=machine,
                artisan=e.body.get("artisan"),
                uid=e.body.get("uid"),
                start_ms=e.t,
                last_ms=e.t,
            )
            sessions[sid] = current
        elif e.kind == GatewayKind.SESSION_CLOSE:
            s = sessions.get(str(e.body.get("session", "")))
            if s is not None and s.open:
                close(s, e.t, str(e.body.get("reason") or EndReason.TAP_OUT))
                s.last_ms = max(s.last_ms, s.end_ms or 0)
                if current is s:
                    current = None
    if motor_since is not None and last_alive is not None:
        intervals.append((motor_since, max(last_alive, motor_since)))
    segments = energy_segments(readings)
    for s in sessions.values():
        end = s.end_ms if s.end_ms is not None else s.last_ms
        s.run_ms = sum(_overlap(a, b, s.start_ms, end) for a, b in intervals)
        if readings:
            s.energy_wh = energy_in(segments, s.start_ms, end)
    return list(sessions.values())
