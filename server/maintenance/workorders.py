"""Work orders, technician lock-out, a machine's maintenance record and the summary.
The caller owns the transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from ..errors import ApiError, not_found, unknown_ref
from ..models import Machine
from .alerts import get_alert, resolve
from .models import Alert, MaintenancePlan, NotificationDelivery, WorkOrder
from .plans import get_counter, local_date, machine_run_ms, plans_for, used_and_left
from .rules import Failure, reliability

LOCK_BY_HAND = "manual"


def get_machine(db: DbSession, machine_id: str) -> Machine:
    m = db.get(Machine, machine_id)
    if m is None:
        raise not_found("machine", machine_id)
    return m


def lock(db: DbSession, machine_id: str, reason: str | None, by: str | None) -> Machine:
    """Put a machine in maintenance: the next snapshot refuses its badges (machine_locked) and
    the gateway ends a running session."""
    m = get_machine(db, machine_id)
    m.locked = True
    text = (reason or "").strip()
    who = f" ({by})" if by else ""
    m.lock_reason = (f"{LOCK_BY_HAND}: {text}{who}" if text else f"{LOCK_BY_HAND}{who}")[:200]
    return m


def unlock(db: DbSession, machine_id: str) -> Machine:
    m = get_machine(db, machine_id)
    m.locked = False
    m.lock_reason = None
    return m


def get_work_order(db: DbSession, wo_id: int) -> WorkOrder:
    wo = db.get(WorkOrder, wo_id)
    if wo is None:
        raise not_found("work_order", wo_id)
    return wo


def open_work_order(db: DbSession, now: dt.datetime, *, title: str | None, machine_id: str | None = None,
                    alert_id: int | None = None, plan_id: int | None = None, by: str | None = None) -> WorkOrder:
    """From an alert (machine and plan taken from it) or by hand (a machine, maybe a plan)."""
    alert: Alert | None = None
    if alert_id is not None:
        alert = db.get(Alert, alert_id)
        if alert is None:
            raise unknown_ref("alert", alert_id)
        if alert.state == "resolved":
            raise ApiError(409, "maint.error.alert_resolved", id=alert.id)
        if machine_id is not None and machine_id != alert.machine:
            raise ApiError(422, "maint.error.wrong_machine", id=alert.id, machine=machine_id)
        busy = db.scalar(select(WorkOrder.id).where(WorkOrder.alert_id == alert.id, WorkOrder.state == "open"))
        if busy is not None:
            raise ApiError(409, "maint.error.alert_has_work_order", id=alert.id, work_order=busy)
        machine_id = alert.machine
        plan_id = plan_id if plan_id is not None else alert.plan_id
    if machine_id is None:
        raise ApiError(422, "maint.error.work_order_target")
    m = db.get(Machine, machine_id)
    if m is None:
        raise unknown_ref("machine", machine_id)
    if plan_id is not None:
        plan = db.get(MaintenancePlan, plan_id)
        if plan is None:
            raise unknown_ref("plan", plan_id)
        if plan.machine not in (None, m.id) or plan.machine_type not in (None, m.type):
            raise ApiError(422, "maint.error.plan_not_for_machine", id=plan_id, machine=m.id)
    if not title:
        title = (alert.detail or {}).get("task") if alert else None
        title = title or (alert.cause if alert else "")
    if not title:
        raise ApiError(422, "maint.error.work_order_title")
    wo = WorkOrder(site=m.site, machine=m.id, alert_id=alert.id if alert else None, plan_id=plan_id, title=title[:300],
                   state="open", work_done="", parts=[], minutes_spent=0, opened_at=now, opened_by=by)
    db.add(wo)
    db.flush()
    return wo


def record_work(db: DbSession, wo_id: int, *, work_done: str | None = None, parts: list[dict[str, Any]] | None = None,
                minutes_spent: int | None = None) -> WorkOrder:
    wo = get_work_order(db, wo_id)
    if wo.state == "closed":
        raise ApiError(409, "maint.error.work_order_closed", id=wo.id)
    if work_done is not None:
        wo.work_done = work_done
    if parts is not None:
        wo.parts = parts
    if minutes_spent is not None:
        wo.minutes_spent = minutes_spent
    return wo


def close_work_order(db: DbSession, wo_id: int, now: dt.datetime, *, by: str | None = None, **work: Any) -> WorkOrder:
    """Close: resolves its alert (unlocking a machine that alert locked) and starts its plan's
    counter again from zero. Closing twice is refused."""
    from .plans import record_service

    wo = record_work(db, wo_id, **work)
    wo.state = "closed"
    wo.closed_at = now
    wo.closed_by = by
    if wo.alert_id is not None:
        alert = get_alert(db, wo.alert_id)
        if alert.state != "resolved":
            resolve(db, alert.id, by, now)  # resets a plan alert's counter too
            return wo
    if wo.plan_id is not None:
        record_service(db, wo.plan_id, wo.machine, now)
    return wo


# --------------------------------------------------------------------------- reading


def machine_failures(db: DbSession, machine_id: str) -> list[Failure]:
    rows = db.execute(
        select(Alert.raised_at, Alert.resolved_at).where(Alert.machine == machine_id, Alert.kind == "fault")
    ).all()
    return [Failure(r, s) for r, s in rows]


def machine_record(db: DbSession, machine_id: str, now: dt.datetime) -> dict[str, Any]:
    """History (alerts, work orders), MTBF and MTTR, and what is coming due."""
    from .views import alert_out, work_order_out

    m = get_machine(db, machine_id)
    today = local_date(db, m.site, now)
    coming = []
    for plan in plans_for(db, m, ("run_hours", "calendar_days")):
        c = get_counter(db, plan, m, now)
        used, left = used_and_left(plan, c, today)
        coming.append({
            "plan": plan.id, "kind": plan.kind, "task": plan.task, "interval": plan.interval,
            "unit": "h" if plan.kind == "run_hours" else "d", "used": round(used, 2), "left": round(left, 2),
            "status": c.status, "last_service_on": c.last_service_on.isoformat() if c.last_service_on else None,
        })
    rel = reliability(machine_failures(db, m.id), machine_run_ms(db, m.id))
    alerts = db.scalars(select(Alert).where(Alert.machine == m.id).order_by(Alert.raised_at.desc(), Alert.id.desc())).all()
    wos = db.scalars(select(WorkOrder).where(WorkOrder.machine == m.id).order_by(WorkOrder.opened_at.desc(), WorkOrder.id.desc())).all()
    return {
        "machine": m.id, "locked": m.locked, "lock_reason": m.lock_reason,
        "coming_due": coming,
        "reliability": {"failures": rel.failures, "mtbf_run_h": rel.mtbf_run_h, "mtbf_h": rel.mtbf_h, "mttr_min": rel.mttr_min},
        "alerts": [alert_out(a) for a in alerts],
        "work_orders": [work_order_out(w) for w in wos],
    }


def summary(db: DbSession, site: str | None = None) -> dict[str, dict[str, int]]:
    """``{"alerts": {kind: count}, "notifications": {channel: sent count}}``."""
    qa = select(Alert.kind, func.count()).group_by(Alert.kind)
    qn = select(NotificationDelivery.channel, func.count()).where(NotificationDelivery.status == "sent")
    if site is not None:
        qa = qa.where(Alert.site == site)
        qn = qn.join(Alert, Alert.id == NotificationDelivery.alert_id).where(Alert.site == site)
    qn = qn.group_by(NotificationDelivery.channel)
    return {
        "alerts": {k: int(n) for k, n in sorted(db.execute(qa).all())},
        "notifications": {c: int(n) for c, n in sorted(db.execute(qn).all())},
    }
