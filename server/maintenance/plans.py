"""Plans applied to machines: counters (run time and days since the last service), their
status and alerts, the service reset, and the condition rules handed to the gateway."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from crp_common.snapshot import SnapCondition

from ..models import Machine, Session, Site, utcnow
from ..timeutil import to_ms, zone
from .alerts import find_open, raise_alert, upgrade
from .models import MaintenancePlan, PlanCounter
from .rules import HOUR_MS, plan_cause, plan_status

PLAN_UNITS = {"run_hours": "h", "calendar_days": "d"}


def plans_for(db: DbSession, machine: Machine, kinds: tuple[str, ...]) -> list[MaintenancePlan]:
    """Enabled plans of these kinds for the machine or its type."""
    return list(
        db.scalars(
            select(MaintenancePlan)
            .where(
                MaintenancePlan.enabled.is_(True),
                MaintenancePlan.kind.in_(kinds),
                or_(MaintenancePlan.machine == machine.id, MaintenancePlan.machine_type == machine.type),
            )
            .order_by(MaintenancePlan.id)
        )
    )


def machines_of(db: DbSession, plan: MaintenancePlan) -> list[Machine]:
    if plan.machine is not None:
        m = db.get(Machine, plan.machine)
        return [m] if m is not None else []
    return list(db.scalars(select(Machine).where(Machine.type == plan.machine_type).order_by(Machine.id)))


def site_tz(db: DbSession, site: str) -> dt.tzinfo:
    s = db.get(Site, site)
    return zone(s.tz if s else None)


def local_date(db: DbSession, site: str, at: dt.datetime) -> dt.date:
    return at.astimezone(site_tz(db, site)).date()


def get_counter(db: DbSession, plan: MaintenancePlan, machine: Machine, now: dt.datetime | None = None) -> PlanCounter:
    """The counter of ``plan`` on ``machine``, created on first use: run time counts from the
    beginning of the machine's record (set a starting point with :func:`set_counter`), days
    count from the day the counter was created."""
    c = db.scalar(select(PlanCounter).where(PlanCounter.plan_id == plan.id, PlanCounter.machine == machine.id))
    if c is not None:
        return c
    c = PlanCounter(
        plan_id=plan.id, machine=machine.id, offset_ms=0, since_ms=0, run_ms=0, cycle=0, status="ok",
        last_service_on=local_date(db, machine.site, now or utcnow()) if plan.kind == "calendar_days" else None,
    )
    try:
        with db.begin_nested():
            db.add(c)
    except IntegrityError:
        c = db.scalar(select(PlanCounter).where(PlanCounter.plan_id == plan.id, PlanCounter.machine == machine.id))
        assert c is not None
    return c


def machine_run_ms(db: DbSession, machine: str, since_ms: int = 0) -> int:
    """Motor run time of the machine's sessions that started at or after ``since_ms``."""
    return int(
        db.scalar(
            select(func.coalesce(func.sum(Session.run_ms), 0)).where(Session.machine == machine, Session.start_ms >= since_ms)
        )
        or 0
    )


def _latest_start_ms(db: DbSession, machine: str) -> int:
    return int(db.scalar(select(func.coalesce(func.max(Session.start_ms), -1)).where(Session.machine == machine)) or -1)


def used_and_left(plan: MaintenancePlan, counter: PlanCounter, today: dt.date | None) -> tuple[float, float]:
    """How much of the interval is used and what is left (hours or days)."""
    interval = float(plan.interval or 0)
    if plan.kind == "run_hours":
        used = counter.run_ms / HOUR_MS
    else:
        used = float((today - counter.last_service_on).days) if (today and counter.last_service_on) else 0.0
    return used, interval - used


def _detail(plan: MaintenancePlan, used: float, left: float) -> dict[str, Any]:
    return {"task": plan.task, "unit": PLAN_UNITS[plan.kind], "used": round(used, 2),
            "interval": plan.interval, "left": round(left, 2)}


def apply_status(db: DbSession, plan: MaintenancePlan, counter: PlanCounter, machine: Machine, at: dt.datetime,
                 today: dt.date | None = None) -> str:
    """Recompute the counter's status and raise or move on its alert."""
    used, left = used_and_left(plan, counter, today)
    status = plan_status(used, float(plan.interval or 0), plan.due_soon_share)
    counter.status = status
    counter.updated_at = utcnow()
    if status == "ok":
        return status
    cause = plan_cause(plan.id)
    detail = _detail(plan, used, left)
    alert = find_open(db, machine.id, cause)
    if alert is not None:
        upgrade(db, alert, status, detail)
    else:
        raise_alert(db, machine, status, cause, at, plan_id=plan.id, detail=detail,
                    source_event=f"plan:{plan.id}:{machine.id}:{counter.cycle}:{status}")
    return status


def refresh_run_hours(db: DbSession, machine: Machine, at: dt.datetime) -> None:
    """Recount the machine's run-hour plans from its sessions of record (idempotent: the
    count is recomputed, so events re-derived or delivered twice never count twice)."""
    for plan in plans_for(db, machine, ("run_hours",)):
        c = get_counter(db, plan, machine, at)
        c.run_ms = c.offset_ms + machine_run_ms(db, machine.id, c.since_ms)
        apply_status(db, plan, c, machine, at)


def refresh_calendar(db: DbSession, plan: MaintenancePlan, now: dt.datetime) -> None:
    for machine in machines_of(db, plan):
        c = get_counter(db, plan, machine, now)
        apply_status(db, plan, c, machine, now, today=local_date(db, machine.site, now))


def record_service(db: DbSession, plan_id: int, machine_id: str, now: dt.datetime) -> PlanCounter | None:
    """The plan's service was done on the machine: its counter starts again from zero."""
    plan = db.get(MaintenancePlan, plan_id)
    machine = db.get(Machine, machine_id)
    if plan is None or machine is None or plan.kind not in PLAN_UNITS:
        return None
    c = get_counter(db, plan, machine, now)
    c.cycle += 1
    c.offset_ms = 0
    # Sessions already on record (also those stamped ahead of the server's clock) are before it.
    c.since_ms = max(to_ms(now), _latest_start_ms(db, machine_id) + 1)
    c.run_ms = 0
    c.last_service_on = local_date(db, machine.site, now)
    c.status = "ok"
    c.updated_at = utcnow()
    return c


def set_counter(db: DbSession, plan: MaintenancePlan, machine: Machine, now: dt.datetime, *,
                run_h: float | None = None, last_service_on: dt.date | None = None) -> PlanCounter:
    """Set where a plan stands on a machine (a machine already run N hours since its last
    service, or serviced on a given day): the counter reads ``run_h`` now, plus what runs next."""
    c = get_counter(db, plan, machine, now)
    if run_h is not None:
        c.offset_ms = int(round(run_h * HOUR_MS))
        c.since_ms = _latest_start_ms(db, machine.id) + 1
        c.run_ms = c.offset_ms
    if last_service_on is not None:
        c.last_service_on = last_service_on
    apply_status(db, plan, c, machine, now, today=local_date(db, machine.site, now))
    return c


def conditions_for(db: DbSession, machine: Machine) -> list[SnapCondition]:
    """The condition rules the gateway watches for this machine (snapshot hook)."""
    return [
        SnapCondition(id=str(p.id), metric=p.metric, above=float(p.above), for_s=int(p.for_s or 0), critical=p.critical)
        for p in plans_for(db, machine, ("condition",))
        if p.metric is not None and p.above is not None
    ]
