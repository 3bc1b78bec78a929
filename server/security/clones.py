"""One badge active on two machines at once: a UID-only card was probably copied.

:func:`check_badge_clones` looks at the sessions of the machines an ingest touched: a session
with a badge that overlaps in time a session of the same badge on another machine raises one
security alert (table ``security_alerts``, deduplicated per pair of sessions) and writes an
audit entry. A session still open counts as running until it closes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from ..models import Session, utcnow
from .audit import audit
from .models import SecurityAlert
from .principal import SYSTEM

log = logging.getLogger("crp.security")

# How far back (from the newest session of the machines touched) sessions are compared.
CLONE_LOOKBACK_MS = 24 * 3600 * 1000
CLONE_KIND = "badge_clone"
OPEN_END = 2**62


@dataclass(frozen=True)
class Span:
    session: str
    machine: str
    site: str
    uid: str
    start_ms: int
    end_ms: int  # OPEN_END while open


def span(s: Session) -> Span:
    end = OPEN_END if s.open or s.end_ms is None else s.end_ms
    return Span(s.id, s.machine, s.site, s.badge_uid or "", s.start_ms, end)


def overlaps(a: Span, b: Span) -> bool:
    """Pure: same badge, different machines, intervals that intersect."""
    return a.uid == b.uid and a.machine != b.machine and a.start_ms < b.end_ms and b.start_ms < a.end_ms


def dedup_key(a: Span, b: Span) -> str:
    first, second = sorted((a.session, b.session))
    return f"{CLONE_KIND}|{a.uid}|{first}|{second}"


def check_badge_clones(db: DbSession, machines_touched: Iterable[str]) -> list[SecurityAlert]:
    """Raise an alert per new pair of overlapping sessions of one badge on two machines."""
    machines = sorted(set(machines_touched))
    if not machines:
        return []
    newest = db.scalar(select(Session.start_ms).where(Session.machine.in_(machines))
                       .order_by(Session.start_ms.desc()).limit(1))
    if newest is None:
        return []
    since = newest - CLONE_LOOKBACK_MS
    mine = [span(s) for s in db.scalars(select(Session).where(
        Session.machine.in_(machines), Session.badge_uid.is_not(None), Session.start_ms >= since))]
    raised: list[SecurityAlert] = []
    seen: set[str] = set()
    for a in mine:
        others = db.scalars(select(Session).where(
            Session.badge_uid == a.uid, Session.machine != a.machine, Session.start_ms < a.end_ms,
            Session.start_ms >= since - CLONE_LOOKBACK_MS))
        for b in (span(s) for s in others):
            if not overlaps(a, b):
                continue
            key = dedup_key(a, b)
            if key in seen or db.scalar(select(SecurityAlert.id).where(SecurityAlert.dedup_key == key)):
                continue
            seen.add(key)
            first, second = sorted((a, b), key=lambda x: (x.start_ms, x.session))
            detail = {
                "sessions": [first.session, second.session],
                "machines": [first.machine, second.machine],
                "starts_ms": [first.start_ms, second.start_ms],
            }
            alert = SecurityAlert(raised_at=utcnow(), kind=CLONE_KIND, site=a.site, badge_uid=a.uid, state="open",
                                  detail=detail, dedup_key=key)
            db.add(alert)
            audit(db, SYSTEM, "badge.clone_suspected", "badge", a.uid, detail)
            log.warning("badge %s active on %s and %s at once", a.uid, first.machine, second.machine)
            raised.append(alert)
    if raised:
        db.flush()
    return raised
