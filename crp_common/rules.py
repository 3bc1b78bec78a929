"""The badge rule: one pure function that decides a tap, used by the gateway live and by the
server to check offline decisions. No I/O, no clock: the caller passes the site-local date."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from .contract import DenyReason
from .snapshot import SnapArtisan, SnapBadge, SnapMachine, Snapshot


@dataclass(frozen=True)
class AuthIndex:
    """A snapshot indexed for O(1) look-ups."""

    version: str
    machines: dict[str, SnapMachine]
    machines_by_node: dict[str, SnapMachine]
    badges: dict[str, SnapBadge]
    artisans: dict[int, SnapArtisan]

    @classmethod
    def of(cls, snap: Snapshot) -> "AuthIndex":
        return cls(
            version=snap.version,
            machines={m.id: m for m in snap.machines},
            machines_by_node={m.node: m for m in snap.machines if m.node},
            badges={b.uid: b for b in snap.badges},
            artisans={a.id: a for a in snap.artisans},
        )


@dataclass(frozen=True)
class MachineLive:
    """What the gateway knows of a machine right now."""

    session_artisan: int | None = None  # artisan of the open session, if any
    motor_running: bool = False
    fault: bool = False  # an active fault code from the node
    locked: bool = False  # a lock the gateway applied itself (critical fault, offline lock)


@dataclass(frozen=True)
class Decision:
    result: Literal["grant", "deny", "end"]
    reason: str | None = None  # DenyReason for deny; "tap_out" or "handover" context
    artisan: SnapArtisan | None = None
    handover_from: int | None = None  # artisan whose session this grant closes


def decide(idx: AuthIndex, machine_id: str, uid: str, live: MachineLive, local_date: dt.date) -> Decision:
    """Decide a badge tap on a machine.

    Order of checks (the first that fails gives the reason): machine known, badge known, badge
    active, artisan active, tap out (same artisan already on the machine), machine locked for
    maintenance, machine faulted, qualification for the machine type (and its expiry), credit,
    machine in use. A qualified artisan may take over an idle machine (motor stopped) from
    someone else: that is a handover; while the motor runs the machine is in use.
    """
    machine = idx.machines.get(machine_id)
    if machine is None:
        return Decision("deny", DenyReason.UNKNOWN_MACHINE)
    badge = idx.badges.get(uid)
    if badge is None:
        return Decision("deny", DenyReason.UNKNOWN_BADGE)
    artisan = idx.artisans.get(badge.artisan)
    if badge.status != "active" or artisan is None:
        return Decision("deny", DenyReason.BADGE_REVOKED, artisan)
    if artisan.status != "active":
        return Decision("deny", DenyReason.ARTISAN_SUSPENDED, artisan)
    if live.session_artisan == artisan.id:
        return Decision("end", "tap_out", artisan)
    if machine.locked or live.locked:
        return Decision("deny", DenyReason.MACHINE_LOCKED, artisan)
    if live.fault:
        return Decision("deny", DenyReason.MACHINE_FAULT, artisan)
    quals = [q for q in artisan.qualifications if q.type == machine.type]
    if not quals:
        return Decision("deny", DenyReason.NOT_QUALIFIED, artisan)
    if all(q.expires is not None and q.expires < local_date for q in quals):
        return Decision("deny", DenyReason.QUALIFICATION_EXPIRED, artisan)
    if artisan.credit_blocked:
        return Decision("deny", DenyReason.CREDIT_LIMIT, artisan)
    if live.session_artisan is not None:
        if live.motor_running:
            return Decision("deny", DenyReason.MACHINE_IN_USE, artisan)
        return Decision("grant", "handover", artisan, handover_from=live.session_artisan)
    return Decision("grant", None, artisan)
