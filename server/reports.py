"""Read models: sessions, usage, denials, the daily summary, machine state history.

Times are filtered in UTC epoch ms (``lo`` inclusive, ``hi`` exclusive, on session start or
event time) and shown both in UTC and in the site's local time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session as DbSession

from crp_common.events import GatewayKind

from .models import Artisan, DeadLetter, Event, Gateway, Machine, MachineStateChange, Session, Site
from .timeutil import hours, local_iso, minutes, utc_iso, zone

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000


@dataclass(frozen=True)
class Filters:
    site: str | None = None
    machine: str | None = None
    artisan: int | None = None
    lo: int | None = None  # epoch ms, inclusive
    hi: int | None = None  # epoch ms, exclusive


def _sessions_where(stmt: Select, f: Filters) -> Select:
    if f.site is not None:
        stmt = stmt.where(Session.site == f.site)
    if f.machine is not None:
        stmt = stmt.where(Session.machine == f.machine)
    if f.artisan is not None:
        stmt = stmt.where(Session.artisan == f.artisan)
    if f.lo is not None:
        stmt = stmt.where(Session.start_ms >= f.lo)
    if f.hi is not None:
        stmt = stmt.where(Session.start_ms < f.hi)
    return stmt


def _events_where(stmt: Select, f: Filters) -> Select:
    if f.site is not None:
        stmt = stmt.where(Event.site == f.site)
    if f.machine is not None:
        stmt = stmt.where(Event.machine == f.machine)
    if f.lo is not None:
        stmt = stmt.where(Event.t_ms >= f.lo)
    if f.hi is not None:
        stmt = stmt.where(Event.t_ms < f.hi)
    return stmt


def _site_zones(db: DbSession, fallback_tz: str) -> dict[str, Any]:
    return {s.code: zone(s.tz, fallback_tz) for s in db.scalars(select(Site))}


def list_sessions(
    db: DbSession, f: Filters, fallback_tz: str, limit: int = DEFAULT_LIMIT, offset: int = 0
) -> list[dict[str, Any]]:
    zones = _site_zones(db, fallback_tz)
    stmt = _sessions_where(select(Session, Artisan.name).outerjoin(Artisan, Artisan.id == Session.artisan), f)
    stmt = stmt.order_by(Session.start_ms, Session.machine, Session.id).limit(limit).offset(offset)
    out = []
    for s, name in db.execute(stmt).all():
        tz = zones.get(s.site) or zone(fallback_tz)
        out.append(
            {
                "id": s.id,
                "site": s.site,
                "machine": s.machine,
                "artisan": s.artisan,
                "artisan_name": name,
                "badge_uid": s.badge_uid,
                "open": s.open,
                "start_utc": utc_iso(s.start_ms),
                "end_utc": utc_iso(s.end_ms),
                "start_local": local_iso(s.start_ms, tz),
                "end_local": local_iso(s.end_ms, tz),
                "start_ms": s.start_ms,
                "end_ms": s.end_ms,
                "badge_ms": s.badge_ms,
                "run_ms": s.run_ms,
                "badge_minutes": minutes(s.badge_ms),
                "run_minutes": minutes(s.run_ms),
                # Metered energy (plugs, nodes with a meter); None when the machine has no meter.
                "energy_wh": None if s.energy_wh is None else round(s.energy_wh, 1),
                "energy_kwh": None if s.energy_wh is None else round(s.energy_wh / 1000, 3),
                "end_reason": s.end_reason,
            }
        )
    return out


_BADGE_MS = func.coalesce(Session.end_ms, Session.last_ms) - Session.start_ms


def usage_by_artisan(db: DbSession, f: Filters) -> list[dict[str, Any]]:
    stmt = _sessions_where(
        select(
            Session.artisan,
            func.count(Session.id),
            func.coalesce(func.sum(_BADGE_MS), 0),
            func.coalesce(func.sum(Session.run_ms), 0),
        ).group_by(Session.artisan),
        f,
    )
    rows = db.execute(stmt).all()
    ids = [r[0] for r in rows if r[0] is not None]
    names = dict(db.execute(select(Artisan.id, Artisan.name).where(Artisan.id.in_(ids))).all()) if ids else {}
    out = [
        {
            "artisan": a,
            "name": names.get(a),
            "sessions": int(n),
            "badge_ms": int(b),
            "run_ms": int(r),
            "badge_hours": hours(int(b)),
            "run_hours": hours(int(r)),
        }
        for a, n, b, r in rows
    ]
    out.sort(key=lambda d: (d["artisan"] is None, d["artisan"] or 0))
    return out


def usage_by_machine(db: DbSession, f: Filters) -> list[dict[str, Any]]:
    stmt = _sessions_where(
        select(
            Session.machine,
            func.count(Session.id),
            func.coalesce(func.sum(_BADGE_MS), 0),
            func.coalesce(func.sum(Session.run_ms), 0),
            func.sum(Session.energy_wh),
        ).group_by(Session.machine),
        f,
    )
    rows = db.execute(stmt).all()
    ids = [r[0] for r in rows]
    machines = {m.id: m for m in db.scalars(select(Machine).where(Machine.id.in_(ids)))} if ids else {}
    out = []
    for m, n, b, r, wh in sorted(rows, key=lambda r: r[0]):
        mm = machines.get(m)
        out.append(
            {
                "machine": m,
                "name": mm.name if mm else None,
                "type": mm.type if mm else None,
                "sessions": int(n),
                "badge_ms": int(b),
                "run_ms": int(r),
                "badge_hours": hours(int(b)),
                "run_hours": hours(int(r)),
                # None when no session of the machine was metered (SQL SUM ignores NULLs).
                "energy_kwh": None if wh is None else round(float(wh) / 1000, 3),
            }
        )
    return out


def denials(db: DbSession, f: Filters) -> dict[str, int]:
    """Refused badges by reason, from the gateway's ``decision`` events."""
    stmt = _events_where(select(Event.body).where(Event.kind == GatewayKind.DECISION), f)
    counts: Counter[str] = Counter()
    for body in db.scalars(stmt):
        body = body or {}
        if body.get("result") == "deny":
            counts[str(body.get("reason") or "unknown")] += 1
    return dict(sorted(counts.items()))


def latest_state(db: DbSession, machine: str) -> str | None:
    return db.scalar(
        select(MachineStateChange.state)
        .where(MachineStateChange.machine == machine)
        .order_by(MachineStateChange.t_ms.desc(), MachineStateChange.id.desc())
        .limit(1)
    )


def state_history(db: DbSession, machine: str, f: Filters, tz: Any, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    stmt = select(MachineStateChange).where(MachineStateChange.machine == machine)
    if f.lo is not None:
        stmt = stmt.where(MachineStateChange.t_ms >= f.lo)
    if f.hi is not None:
        stmt = stmt.where(MachineStateChange.t_ms < f.hi)
    stmt = stmt.order_by(MachineStateChange.t_ms, MachineStateChange.id).limit(limit)
    return [
        {
            "t_ms": c.t_ms,
            "t_utc": utc_iso(c.t_ms),
            "t_local": local_iso(c.t_ms, tz),
            "state": c.state,
            "cause": c.cause,
        }
        for c in db.scalars(stmt)
    ]


def count_dead_letters(db: DbSession, site: str | None = None) -> int:
    stmt = select(func.count(DeadLetter.id))
    if site is not None:
        stmt = stmt.where(DeadLetter.gateway.in_(select(Gateway.id).where(Gateway.site == site)))
    return int(db.scalar(stmt) or 0)


def summary(db: DbSession, f: Filters) -> dict[str, Any]:
    sessions = int(db.scalar(_sessions_where(select(func.count(Session.id)), f)) or 0)
    open_sessions = int(db.scalar(_sessions_where(select(func.count(Session.id)).where(Session.open.is_(True)), f)) or 0)
    artisans = [
        {
            "id": u["artisan"],
            "name": u["name"],
            "sessions": u["sessions"],
            "badge_hours": u["badge_hours"],
            "run_hours": u["run_hours"],
        }
        for u in usage_by_artisan(db, f)
    ]
    usage = {u["machine"]: u for u in usage_by_machine(db, f)}
    mstmt = select(Machine).order_by(Machine.id)
    if f.site is not None:
        mstmt = mstmt.where(Machine.site == f.site)
    if f.machine is not None:
        mstmt = mstmt.where(Machine.id == f.machine)
    registered = {m.id: m for m in db.scalars(mstmt)}
    machines = []
    for mid in sorted(set(registered) | set(usage)):
        m = registered.get(mid)
        u = usage.get(mid, {})
        machines.append(
            {
                "id": mid,
                "name": m.name if m else u.get("name"),
                "type": m.type if m else u.get("type"),
                "sessions": u.get("sessions", 0),
                "badge_hours": u.get("badge_hours", 0.0),
                "run_hours": u.get("run_hours", 0.0),
                "state": latest_state(db, mid),
            }
        )
    events = int(db.scalar(_events_where(select(func.count(Event.id)), f)) or 0)
    return {
        "sessions": sessions,
        "open_sessions": open_sessions,
        "denied": denials(db, f),
        "artisans": artisans,
        "machines": machines,
        "events": events,
        "dead_letters": count_dead_letters(db, f.site),
    }


def dead_letters(db: DbSession, limit: int = DEFAULT_LIMIT, offset: int = 0, reason: str | None = None) -> list[dict[str, Any]]:
    stmt = select(DeadLetter).order_by(DeadLetter.id.desc())
    if reason is not None:
        stmt = stmt.where(DeadLetter.reason == reason)
    return [
        {
            "id": d.id,
            "received_at": d.received_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "source": d.source,
            "gateway": d.gateway,
            "reason": d.reason,
            "detail": d.detail,
            "payload": d.payload,
        }
        for d in db.scalars(stmt.limit(limit).offset(offset))
    ]
