"""Keeps the ``sessions`` table equal to the pure fold (crp_common.sessions.derive_sessions)
of all stored events, re-deriving only a window of one machine's history after an ingest.

Window: from the start of the latest stored session that began before the earliest new event
(or that event's time if none). The fold carries node state across the window start (the
node's boot, its last sign of life, a motor-on interval still running), so the window is fed
the node messages needed to rebuild that state ("context"), and it is widened while a motor
interval runs across its start (that interval's end can still change earlier sessions' run
time). Session ids already used before the window are skipped (the fold keeps the first open
of an id), and sessions still open are included. The result does not depend on how events
were split into batches or in which order they arrived.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session as DbSession

from crp_common.contract import UPLINK
from crp_common.events import GatewayKind
from crp_common.sessions import FoldEvent, SessionRecord, derive_sessions

from .models import Event, Session

NODE_KINDS = tuple(str(k) for k in UPLINK)
SESSION_KINDS = (str(GatewayKind.SESSION_OPEN), str(GatewayKind.SESSION_CLOSE))
FOLD_KINDS = NODE_KINDS + SESSION_KINDS
CONTEXT_SCAN_CHUNK = 50


def affects_sessions(kind: str) -> bool:
    return kind in FOLD_KINDS


def _fold_event(e: Event) -> FoldEvent:
    return FoldEvent(t=e.t_ms, source=e.source, boot=e.boot, seq=e.seq, kind=e.kind, machine=e.machine, body=e.body or {})


def _is_lwt(e: Event) -> bool:
    return e.kind == "status" and (e.body or {}).get("state") == "offline"


def _desc(stmt):
    return stmt.order_by(Event.t_ms.desc(), Event.source.desc(), Event.boot.desc(), Event.seq.desc())


def _scan_back(db: DbSession, where: list, stop) -> tuple[Event | None, Event | None]:
    """Walk events matching ``where`` from the latest backwards; return (latest, first that
    satisfies ``stop``)."""
    latest = None
    offset = 0
    while True:
        rows = db.scalars(_desc(select(Event).where(*where)).limit(CONTEXT_SCAN_CHUNK).offset(offset)).all()
        for e in rows:
            if latest is None:
                latest = e
            if stop(e):
                return latest, e
        if len(rows) < CONTEXT_SCAN_CHUNK:
            return latest, None
        offset += CONTEXT_SCAN_CHUNK


def motor_since(events: Iterable[FoldEvent]) -> int | None:
    """When the motor started running if it still runs after ``events`` (the fold's rules)."""
    node_boot: tuple[str, int] | None = None
    since: int | None = None
    for e in sorted(events, key=lambda e: e.key):
        if e.kind not in UPLINK:
            continue
        this_boot = (e.source, e.boot)
        if node_boot is not None and this_boot != node_boot and e.boot > node_boot[1]:
            since = None
        if e.kind == "status" and e.body.get("state") == "offline":
            if node_boot is None or this_boot == node_boot:
                since = None
            continue
        node_boot = this_boot
        if e.kind == "motor":
            if e.body.get("running"):
                since = e.t if since is None else since
            else:
                since = None
    return since


def context_before(db: DbSession, machine: str, w: int) -> list[FoldEvent]:
    """The node messages before ``w`` that rebuild the fold's node state at ``w``."""
    base = [Event.machine == machine, Event.kind.in_(NODE_KINDS), Event.t_ms < w]
    _, anchor = _scan_back(db, base, lambda e: not _is_lwt(e))
    if anchor is None:
        return []
    start = anchor.t_ms
    motors = base + [Event.kind == "motor"]
    last_motor = db.scalars(_desc(select(Event).where(*motors)).limit(1)).first()
    if last_motor is not None and (last_motor.body or {}).get("running"):
        # The run began after the latest motor-off of the same boot, or at the boot's start.
        boot = (last_motor.source, last_motor.boot)
        _, stop = _scan_back(
            db, motors, lambda e: (e.source, e.boot) != boot or not (e.body or {}).get("running")
        )
        since = db.scalar(
            select(func.min(Event.t_ms)).where(*base, Event.source == boot[0], Event.boot == boot[1])
        )
        if stop is not None and (stop.source, stop.boot) == boot:
            since = stop.t_ms
        if since is not None:
            start = min(start, since)
    rows = db.scalars(select(Event).where(*base, Event.t_ms >= start)).all()
    out = [_fold_event(e) for e in rows]
    baseline = energy_baseline(db, machine, w)
    if baseline is not None and baseline.t_ms < start:
        out.append(_fold_event(baseline))  # the counter reading the first one after w counts from
    return out


def energy_baseline(db: DbSession, machine: str, w: int) -> Event | None:
    """The latest energy reading before ``w`` if it belongs to the boot of the latest node
    message before ``w`` (the fold counts energy from it); None otherwise."""
    base = [Event.machine == machine, Event.kind.in_(NODE_KINDS), Event.t_ms < w]
    latest = db.scalars(_desc(select(Event).where(*base)).limit(1)).first()
    if latest is None:
        return None
    e = db.scalars(_desc(select(Event).where(*base, Event.kind == "energy")).limit(1)).first()
    if e is None or (e.source, e.boot) != (latest.source, latest.boot):
        return None
    return e


def window_start(db: DbSession, machine: str, t0: int) -> tuple[int, list[FoldEvent]]:
    w = db.scalar(select(func.max(Session.start_ms)).where(Session.machine == machine, Session.start_ms < t0))
    w = t0 if w is None else w
    while True:
        ctx = context_before(db, machine, w)
        since = motor_since(ctx)
        baseline = energy_baseline(db, machine, w)
        if baseline is not None:
            # Energy between that reading and the next one is spread over sessions ending after it.
            since = baseline.t_ms if since is None else min(since, baseline.t_ms)
        if since is None:
            return w, ctx
        earlier = db.scalar(
            select(func.min(Session.start_ms)).where(
                Session.machine == machine,
                Session.start_ms < w,
                or_(Session.end_ms.is_(None), Session.end_ms > since),
            )
        )
        if earlier is None or earlier >= w:
            return w, ctx
        w = earlier


def _as_artisan(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if -(2**31) <= v < 2**31 else None
    if isinstance(v, str) and v.strip().isdigit() and len(v.strip()) < 10:
        return int(v.strip())
    return None


def rederive_machine(db: DbSession, machine: str, t0: int) -> list[SessionRecord]:
    """Re-derive ``machine``'s sessions affected by new events at or after ``t0``."""
    w, ctx = window_start(db, machine, t0)
    window = list(
        db.scalars(select(Event).where(Event.machine == machine, Event.kind.in_(FOLD_KINDS), Event.t_ms >= w)).all()
    )
    # Sessions still open that began before the window: include their opening event.
    still_open = db.scalars(
        select(Session).where(Session.machine == machine, Session.open.is_(True), Session.start_ms < w)
    ).all()
    open_ids = {s.id for s in still_open}
    if still_open:
        opens = db.scalars(
            select(Event).where(
                Event.machine == machine,
                Event.kind == GatewayKind.SESSION_OPEN,
                Event.t_ms.in_({s.start_ms for s in still_open}),
            )
        ).all()
        window.extend(e for e in opens if str((e.body or {}).get("session", "")) in open_ids)
    # The fold keeps the first open of a session id: ids opened before the window stay there.
    sids = {str((e.body or {}).get("session", "")) for e in window if e.kind == GatewayKind.SESSION_OPEN}
    used_before = set()
    if sids:
        used_before = set(
            db.scalars(select(Session.id).where(Session.id.in_(sids), Session.start_ms < w)).all()
        ) - open_ids
    site_of: dict[str, str] = {}
    fold: list[FoldEvent] = list(ctx)
    for e in window:
        if e.kind == GatewayKind.SESSION_OPEN:
            sid = str((e.body or {}).get("session", ""))
            if sid in used_before:
                continue
            site_of.setdefault(sid, e.site)
        fold.append(_fold_event(e))
    derived = [s for s in derive_sessions(fold) if s.machine == machine]
    _store(db, machine, w, derived, site_of)
    return derived


def _store(db: DbSession, machine: str, w: int, derived: list[SessionRecord], site_of: dict[str, str]) -> None:
    ids = [s.id for s in derived]
    cond = and_(Session.machine == machine, Session.start_ms >= w)
    if ids:
        cond = or_(cond, Session.id.in_(ids))
    existing = {s.id: s for s in db.scalars(select(Session).where(cond)).all()}
    for rec in derived:
        row = existing.pop(rec.id, None)
        if row is None:
            row = Session(id=rec.id)
            db.add(row)
        row.site = site_of.get(rec.id, row.site or "")
        row.machine = machine
        row.artisan = _as_artisan(rec.artisan)
        row.badge_uid = str(rec.uid)[:20] if rec.uid is not None else None
        row.start_ms = rec.start_ms
        row.end_ms = rec.end_ms
        row.end_reason = str(rec.end_reason)[:32] if rec.end_reason is not None else None
        row.run_ms = rec.run_ms
        row.last_ms = rec.last_ms
        row.open = rec.open
        row.energy_wh = rec.energy_wh
    for row in existing.values():
        if row.machine == machine and row.start_ms >= w:
            db.delete(row)
    db.flush()


def all_sessions_of(db: DbSession, machine: str | None = None) -> list[SessionRecord]:
    """The full fold over every stored event (for checks and tests; not used on ingest)."""
    stmt = select(Event).where(Event.kind.in_(FOLD_KINDS), Event.machine.is_not(None))
    if machine is not None:
        stmt = stmt.where(Event.machine == machine)
    return derive_sessions(_fold_event(e) for e in db.scalars(stmt).all())


