"""Pure maintenance rules: where a plan stands, cause keys, which faults lock a machine,
reliability figures. No database, no clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable

# A plan is overdue once it has run this share of its interval past due
# (20 run-hours plan: due at 20 h, overdue at 22 h; 30 days plan: overdue after 33 days).
OVERDUE_SHARE = 0.1
# Node fault codes that lock the machine at the server when no fault plan says otherwise
# (the gateway refuses badges on the same codes while they are active: gateway/tracker.py).
DEFAULT_CRITICAL_FAULTS = frozenset({"estop", "thermal", "overcurrent"})
HOUR_MS = 3_600_000

STATUS_ORDER = {"ok": 0, "due_soon": 1, "due": 2, "overdue": 3}


def plan_status(used: float, interval: float, due_soon_share: float, overdue_share: float = OVERDUE_SHARE) -> str:
    """``ok``, ``due_soon`` (in the last ``due_soon_share`` of the interval), ``due`` (interval
    reached) or ``overdue`` (past it by ``overdue_share`` of the interval)."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    if used >= interval * (1 + overdue_share):
        return "overdue"
    if used >= interval:
        return "due"
    if due_soon_share > 0 and used >= interval * (1 - due_soon_share):
        return "due_soon"
    return "ok"


def plan_cause(plan_id: int) -> str:
    return f"plan:{plan_id}"


def fault_cause(code: str) -> str:
    return f"fault:{code}"


def offline_cause() -> str:
    return "offline"


def dedup_key(machine: str, cause: str) -> str:
    return f"{machine}|{cause}"


def event_key(source: str, boot: int, seq: int) -> str:
    return f"{source}:{boot}:{seq}"


def days_between(a: dt.date, b: dt.date) -> int:
    return (b - a).days


@dataclass(frozen=True)
class Failure:
    """A failure of a machine: raised, and resolved (None while being repaired)."""

    raised: dt.datetime
    resolved: dt.datetime | None


@dataclass(frozen=True)
class Reliability:
    failures: int
    mtbf_run_h: float | None  # run-hours per failure
    mtbf_h: float | None  # mean calendar hours of service between the end of one repair and the next failure
    mttr_min: float | None  # mean minutes from failure to repair


def reliability(failures: Iterable[Failure], run_ms: int) -> Reliability:
    """MTBF and MTTR of one machine from its failures and its total motor run time."""
    fs = sorted(failures, key=lambda f: f.raised)
    repairs = [(f.resolved - f.raised).total_seconds() / 60 for f in fs if f.resolved is not None]
    ups = [
        (nxt.raised - prev.resolved).total_seconds() / 3600
        for prev, nxt in zip(fs, fs[1:])
        if prev.resolved is not None and nxt.raised >= prev.resolved
    ]
    return Reliability(
        failures=len(fs),
        mtbf_run_h=round(run_ms / HOUR_MS / len(fs), 2) if fs else None,
        mtbf_h=round(sum(ups) / len(ups), 2) if ups else None,
        mttr_min=round(sum(repairs) / len(repairs), 1) if repairs else None,
    )
