"""The alert lifecycle: raise (deduplicated), upgrade (due soon -> due -> overdue), clear,
acknowledge, resolve, escalate; every alert event queues one delivery per notification target.

The caller owns the transaction (nothing here commits)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from ..errors import ApiError, not_found
from ..models import Machine
from .models import Alert, NotificationDelivery, NotificationTarget, Technician
from .rules import STATUS_ORDER, dedup_key

# An open alert nobody acknowledged within this time is escalated (notified again, also to
# the escalation-only targets such as the manager).
ESCALATE_AFTER_S = 30 * 60

# Who resolved an alert whose cause went away on its own (a non-critical condition cleared,
# a node back online).
AUTO = "auto"


def find_open(db: DbSession, machine: str, cause: str) -> Alert | None:
    return db.scalar(select(Alert).where(Alert.dedup_key == dedup_key(machine, cause)))


def raise_alert(
    db: DbSession,
    machine: Machine,
    kind: str,
    cause: str,
    at: dt.datetime,
    *,
    plan_id: int | None = None,
    critical: bool = False,
    detail: dict[str, Any] | None = None,
    source_event: str | None = None,
) -> tuple[Alert | None, bool]:
    """Open an alert for ``(machine, cause)`` unless one is open (returned, False) or
    ``source_event`` already raised one (None, False). New alerts queue their notifications."""
    existing = find_open(db, machine.id, cause)
    if existing is not None:
        return existing, False
    if source_event is not None and db.scalar(select(Alert.id).where(Alert.source_event == source_event)) is not None:
        return None, False
    alert = Alert(
        site=machine.site, machine=machine.id, plan_id=plan_id, kind=kind, cause=cause, state="open",
        critical=critical, detail=detail or {}, raised_at=at, dedup_key=dedup_key(machine.id, cause),
        source_event=source_event,
    )
    try:
        with db.begin_nested():
            db.add(alert)
    except IntegrityError:  # raised concurrently by another ingestion
        return find_open(db, machine.id, cause), False
    queue(db, alert, "raised")
    return alert, True


def upgrade(db: DbSession, alert: Alert, kind: str, detail: dict[str, Any] | None = None) -> bool:
    """A plan alert moving on (due soon -> due -> overdue): one notification per step."""
    if detail:
        alert.detail = {**(alert.detail or {}), **detail}
    if STATUS_ORDER.get(kind, 0) <= STATUS_ORDER.get(alert.kind, 0):
        return False
    alert.kind = kind
    db.flush()
    queue(db, alert, kind)
    return True


def clear(db: DbSession, alert: Alert, at: dt.datetime) -> None:
    """The cause went away. A critical alert stays open until someone resolves it (the
    machine stays locked); others resolve on their own."""
    if alert.state == "resolved":
        return
    alert.cleared_at = at
    if not alert.critical:
        _resolve(alert, AUTO, at)


def _resolve(alert: Alert, by: str | None, at: dt.datetime) -> None:
    alert.state = "resolved"
    alert.resolved_at = at
    alert.resolved_by = by
    alert.dedup_key = None


def get_alert(db: DbSession, alert_id: int) -> Alert:
    alert = db.get(Alert, alert_id)
    if alert is None:
        raise not_found("alert", alert_id)
    return alert


def acknowledge(db: DbSession, alert_id: int, by: str | None, now: dt.datetime) -> Alert:
    alert = get_alert(db, alert_id)
    if alert.state != "open":
        raise ApiError(409, f"maint.error.alert_{alert.state}", id=alert.id)
    alert.state = "acknowledged"
    alert.acknowledged_at = now
    alert.acknowledged_by = by
    return alert


def resolve(db: DbSession, alert_id: int, by: str | None, now: dt.datetime) -> Alert:
    """Resolve by hand (or by closing a work order). A plan alert resolved means the service
    was done: the plan's counter is reset. A machine locked by this alert is unlocked."""
    from .plans import record_service  # late: plans imports this module

    alert = get_alert(db, alert_id)
    if alert.state == "resolved":
        raise ApiError(409, "maint.error.alert_resolved", id=alert.id)
    _resolve(alert, by, now)
    machine = db.get(Machine, alert.machine)
    if machine is not None and machine.locked and machine.lock_reason == alert.cause:
        machine.locked = False
        machine.lock_reason = None
    if alert.plan_id is not None and alert.kind in ("due_soon", "due", "overdue"):
        record_service(db, alert.plan_id, alert.machine, now)
    return alert


def escalate(db: DbSession, now: dt.datetime) -> list[Alert]:
    """Escalate open alerts nobody acknowledged within :data:`ESCALATE_AFTER_S`."""
    limit = now - dt.timedelta(seconds=ESCALATE_AFTER_S)
    alerts = db.scalars(
        select(Alert)
        .where(Alert.state == "open", Alert.escalated_at.is_(None), Alert.raised_at <= limit)
        .order_by(Alert.id)
    ).all()
    for a in alerts:
        a.escalated_at = now
        queue(db, a, "escalated")
    return list(alerts)


def targets_for(db: DbSession, site: str, event: str) -> list[NotificationTarget]:
    q = (
        select(NotificationTarget)
        .outerjoin(Technician, Technician.id == NotificationTarget.technician_id)
        .where(
            NotificationTarget.site == site,
            NotificationTarget.enabled.is_(True),
            or_(NotificationTarget.technician_id.is_(None), Technician.active.is_(True)),
        )
        .order_by(NotificationTarget.id)
    )
    if event != "escalated":
        q = q.where(NotificationTarget.escalation_only.is_(False))
    return list(db.scalars(q))


def queue(db: DbSession, alert: Alert, event: str) -> int:
    """One pending delivery per target for this alert event (never two: UNIQUE)."""
    db.flush()
    done = set(
        db.scalars(
            select(NotificationDelivery.target_id).where(
                NotificationDelivery.alert_id == alert.id, NotificationDelivery.event == event
            )
        )
    )
    n = 0
    for t in targets_for(db, alert.site, event):
        if t.id in done:
            continue
        try:
            with db.begin_nested():
                db.add(NotificationDelivery(alert_id=alert.id, target_id=t.id, event=event, channel=t.channel,
                                            status="pending", attempts=0))
            n += 1
        except IntegrityError:
            continue
    return n
