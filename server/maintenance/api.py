"""Maintenance API (manager endpoints, bearer ``admin_token`` like the registry): plans and
their counters, alerts, technicians, notification targets and deliveries, work orders,
technician lock-out, a machine's maintenance record, the summary."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import select

from crp_common.contract import ID_RE, SITE_RE, FaultCode, TYPE_RE

from ..api.deps import Authorized, Db
from ..errors import ApiError, not_found, unknown_ref
from ..models import Machine, MachineType, Site, utcnow
from ..security.audit import audit
from . import workorders
from .alerts import acknowledge, get_alert, resolve
from .evaluation import evaluate
from .models import Alert, MaintenancePlan, NotificationDelivery, NotificationTarget, PlanCounter, Technician
from .plans import apply_status, get_counter, local_date, machines_of, set_counter
from .views import alert_out, delivery_out, plan_out, target_out, technician_out, work_order_out

router = APIRouter(prefix="/api/v1", tags=["maintenance"], dependencies=[Authorized])

MAX_ID = 2**31 - 1
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
Ident = Annotated[str, Field(pattern=ID_RE.pattern)]
TypeCode = Annotated[str, Field(pattern=TYPE_RE.pattern)]
SiteCode = Annotated[str, Field(pattern=SITE_RE.pattern)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Who = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Number = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
PlanKind = Literal["run_hours", "calendar_days", "condition", "fault"]
Metric = Literal["temp", "vib", "current"]
MAX_INTERVAL = 100_000  # hours or days
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 ]{5,19}$")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- plans


class PlanIn(_In):
    machine: Ident | None = None
    machine_type: TypeCode | None = None
    kind: PlanKind
    interval: Annotated[float, Field(gt=0, le=MAX_INTERVAL, allow_inf_nan=False)] | None = None
    due_soon_share: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.1
    task: Text
    metric: Metric | None = None
    above: Number | None = None
    for_s: Annotated[int, Field(ge=0, le=24 * 3600)] | None = None
    fault_code: FaultCode | None = None
    critical: bool = False
    enabled: bool = True
    # Where the counter starts (machine plans): hours already run since the last service, or
    # the day of the last service.
    run_h: Annotated[float, Field(ge=0, le=MAX_INTERVAL * 2, allow_inf_nan=False)] | None = None
    last_service_on: dt.date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "PlanIn":
        if (self.machine is None) == (self.machine_type is None):
            raise ValueError("give exactly one of machine or machine_type")
        if self.kind in ("run_hours", "calendar_days"):
            if self.interval is None:
                raise ValueError(f"a {self.kind} plan needs an interval greater than 0")
            if self.metric is not None or self.above is not None or self.fault_code is not None:
                raise ValueError(f"a {self.kind} plan has no metric, above or fault_code")
        elif self.kind == "condition":
            if self.metric is None or self.above is None:
                raise ValueError("a condition plan needs a metric (temp, vib or current) and a limit (above)")
            if self.interval is not None or self.fault_code is not None:
                raise ValueError("a condition plan has no interval or fault_code")
        else:
            if self.fault_code is None:
                raise ValueError("a fault plan needs a fault_code")
            if self.interval is not None or self.metric is not None or self.above is not None:
                raise ValueError("a fault plan has no interval, metric or above")
        if self.kind != "run_hours" and self.run_h is not None:
            raise ValueError("run_h is for run_hours plans")
        if self.kind != "calendar_days" and self.last_service_on is not None:
            raise ValueError("last_service_on is for calendar_days plans")
        if (self.run_h is not None or self.last_service_on is not None) and self.machine is None:
            raise ValueError("set a machine-type plan's counters per machine (PUT .../counters/{machine})")
        return self


class PlanPatch(_In):
    interval: Annotated[float, Field(gt=0, le=MAX_INTERVAL, allow_inf_nan=False)] | None = None
    due_soon_share: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] | None = None
    task: Text | None = None
    above: Number | None = None
    for_s: Annotated[int, Field(ge=0, le=24 * 3600)] | None = None
    critical: bool | None = None
    enabled: bool | None = None


class CounterIn(_In):
    run_h: Annotated[float, Field(ge=0, le=MAX_INTERVAL * 2, allow_inf_nan=False)] | None = None
    last_service_on: dt.date | None = None


def _plan(db: Db, plan_id: int) -> MaintenancePlan:
    p = db.get(MaintenancePlan, plan_id)
    if p is None:
        raise not_found("plan", plan_id)
    return p


def _counters(db: Db, plan: MaintenancePlan) -> list[PlanCounter] | None:
    if plan.kind not in ("run_hours", "calendar_days"):
        return None
    return list(db.scalars(select(PlanCounter).where(PlanCounter.plan_id == plan.id).order_by(PlanCounter.machine)))


@router.post("/maintenance/plans", status_code=201)
def create_plan(body: PlanIn, db: Db) -> dict[str, Any]:
    if body.machine is not None and db.get(Machine, body.machine) is None:
        raise unknown_ref("machine", body.machine)
    if body.machine_type is not None and db.get(MachineType, body.machine_type) is None:
        raise unknown_ref("machine_type", body.machine_type)
    now = utcnow()
    p = MaintenancePlan(
        machine=body.machine, machine_type=body.machine_type, kind=body.kind, interval=body.interval,
        due_soon_share=body.due_soon_share, task=body.task, metric=body.metric, above=body.above,
        for_s=(body.for_s or 0) if body.kind == "condition" else None,
        fault_code=str(body.fault_code) if body.fault_code else None, critical=body.critical, enabled=body.enabled,
        created_at=now,
    )
    db.add(p)
    db.flush()
    if p.kind in ("run_hours", "calendar_days"):
        for m in machines_of(db, p):
            if body.run_h is not None or body.last_service_on is not None:
                set_counter(db, p, m, now, run_h=body.run_h, last_service_on=body.last_service_on)
            else:
                get_counter(db, p, m, now)
    db.commit()
    return plan_out(p, _counters(db, p))


@router.get("/maintenance/plans")
def list_plans(db: Db, machine: Annotated[str | None, Query(max_length=48)] = None,
               kind: PlanKind | None = None) -> list[dict[str, Any]]:
    q = select(MaintenancePlan).order_by(MaintenancePlan.id)
    if machine is not None:
        m = db.get(Machine, machine)
        if m is None:
            raise not_found("machine", machine)
        q = q.where((MaintenancePlan.machine == m.id) | (MaintenancePlan.machine_type == m.type))
    if kind is not None:
        q = q.where(MaintenancePlan.kind == kind)
    return [plan_out(p, _counters(db, p)) for p in db.scalars(q)]


@router.get("/maintenance/plans/{plan_id}")
def get_plan(plan_id: PathId, db: Db) -> dict[str, Any]:
    p = _plan(db, plan_id)
    return plan_out(p, _counters(db, p))


@router.patch("/maintenance/plans/{plan_id}")
def patch_plan(plan_id: PathId, body: PlanPatch, db: Db) -> dict[str, Any]:
    p = _plan(db, plan_id)
    fields = body.model_dump(exclude_unset=True)
    if any(v is None for v in fields.values()):
        raise ApiError(422, "maint.error.null_field", fields=", ".join(k for k, v in fields.items() if v is None))
    periodic = p.kind in ("run_hours", "calendar_days")
    if not periodic and ({"interval", "due_soon_share"} & fields.keys()):
        raise ApiError(422, "maint.error.field_not_for_kind", kind=p.kind, fields="interval, due_soon_share")
    if p.kind != "condition" and ({"above", "for_s"} & fields.keys()):
        raise ApiError(422, "maint.error.field_not_for_kind", kind=p.kind, fields="above, for_s")
    for k, v in fields.items():
        setattr(p, k, v)
    db.flush()
    if periodic and p.enabled:
        now = utcnow()
        for m in machines_of(db, p):
            apply_status(db, p, get_counter(db, p, m, now), m, now, today=local_date(db, m.site, now))
    db.commit()
    return plan_out(p, _counters(db, p))


@router.delete("/maintenance/plans/{plan_id}", status_code=204)
def delete_plan(plan_id: PathId, db: Db) -> None:
    p = _plan(db, plan_id)
    db.delete(p)
    db.commit()


@router.put("/maintenance/plans/{plan_id}/counters/{machine_id}")
def put_counter(plan_id: PathId, machine_id: str, body: CounterIn, db: Db) -> dict[str, Any]:
    """Set where a plan stands on a machine (e.g. a machine that already ran 19 h since its
    last greasing)."""
    p = _plan(db, plan_id)
    m = db.get(Machine, machine_id)
    if m is None:
        raise not_found("machine", machine_id)
    if m.id not in {x.id for x in machines_of(db, p)}:
        raise ApiError(422, "maint.error.plan_not_for_machine", id=p.id, machine=m.id)
    if p.kind == "run_hours" and body.last_service_on is not None or p.kind == "calendar_days" and body.run_h is not None:
        raise ApiError(422, "maint.error.field_not_for_kind", kind=p.kind, fields="run_h / last_service_on")
    if p.kind not in ("run_hours", "calendar_days"):
        raise ApiError(422, "maint.error.field_not_for_kind", kind=p.kind, fields="counters")
    set_counter(db, p, m, utcnow(), run_h=body.run_h, last_service_on=body.last_service_on)
    db.commit()
    return plan_out(p, _counters(db, p))


# --------------------------------------------------------------------------- alerts


class AlertAction(_In):
    by: Who | None = None


@router.get("/alerts")
def list_alerts(
    db: Db,
    state: Literal["open", "acknowledged", "resolved"] | None = None,
    kind: Literal["due_soon", "due", "overdue", "condition", "fault", "offline"] | None = None,
    machine: Annotated[str | None, Query(max_length=48)] = None,
    site: Annotated[str | None, Query(max_length=8)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    q = select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit)
    if state is not None:
        q = q.where(Alert.state == state)
    if kind is not None:
        q = q.where(Alert.kind == kind)
    if machine is not None:
        q = q.where(Alert.machine == machine)
    if site is not None:
        q = q.where(Alert.site == site)
    return [alert_out(a) for a in db.scalars(q)]


@router.get("/alerts/{alert_id}")
def get_one_alert(alert_id: PathId, db: Db) -> dict[str, Any]:
    return alert_out(get_alert(db, alert_id))


@router.post("/alerts/{alert_id}/ack")
def ack_alert(alert_id: PathId, db: Db, body: AlertAction | None = None) -> dict[str, Any]:
    a = acknowledge(db, alert_id, body.by if body else None, utcnow())
    db.commit()
    return alert_out(a)


@router.post("/alerts/{alert_id}/resolve")
def resolve_alert(alert_id: PathId, db: Db, body: AlertAction | None = None) -> dict[str, Any]:
    a = resolve(db, alert_id, body.by if body else None, utcnow())
    db.commit()
    return alert_out(a)


# --------------------------------------------------------------------------- technicians and targets


class TechnicianIn(_In):
    site: SiteCode
    name: Who
    phone: Annotated[str, Field(pattern=PHONE_RE.pattern)] | None = None
    email: Annotated[str, Field(pattern=EMAIL_RE.pattern, max_length=200)] | None = None
    lang: Literal["fr", "en"] = "fr"
    active: bool = True


class TechnicianPatch(_In):
    name: Who | None = None
    phone: Annotated[str, Field(pattern=PHONE_RE.pattern)] | None = None
    email: Annotated[str, Field(pattern=EMAIL_RE.pattern, max_length=200)] | None = None
    lang: Literal["fr", "en"] | None = None
    active: bool | None = None


Channel = Literal["email", "sms", "webhook", "mqtt"]


def _check_address(channel: str, address: str) -> None:
    ok = {
        "email": lambda a: bool(EMAIL_RE.match(a)),
        "sms": lambda a: bool(PHONE_RE.match(a)),
        "webhook": lambda a: a.startswith(("http://", "https://")) and len(a) > 8 and " " not in a,
        "mqtt": lambda a: len(a) <= 64 and "/" not in a and "#" not in a and "+" not in a,
    }[channel](address)
    if not ok:
        raise ApiError(422, f"maint.error.bad_address_{channel}", address=address[:100])


class TargetIn(_In):
    site: SiteCode | None = None
    technician_id: RowId | None = None
    channel: Channel
    # e-mail address, phone number (+221...), webhook URL, or for MQTT an optional device label
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] = ""
    escalation_only: bool = False
    enabled: bool = True


class TargetPatch(_In):
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None
    escalation_only: bool | None = None
    enabled: bool | None = None


def _technician(db: Db, tech_id: int) -> Technician:
    t = db.get(Technician, tech_id)
    if t is None:
        raise not_found("technician", tech_id)
    return t


def _target(db: Db, target_id: int) -> NotificationTarget:
    t = db.get(NotificationTarget, target_id)
    if t is None:
        raise not_found("target", target_id)
    return t


@router.post("/technicians", status_code=201)
def create_technician(body: TechnicianIn, db: Db) -> dict[str, Any]:
    if db.get(Site, body.site) is None:
        raise unknown_ref("site", body.site)
    t = Technician(**body.model_dump())
    db.add(t)
    db.commit()
    return technician_out(t)


@router.get("/technicians")
def list_technicians(db: Db, site: Annotated[str | None, Query(max_length=8)] = None) -> list[dict[str, Any]]:
    q = select(Technician).order_by(Technician.id)
    if site is not None:
        q = q.where(Technician.site == site)
    return [technician_out(t) for t in db.scalars(q)]


@router.get("/technicians/{tech_id}")
def get_technician(tech_id: PathId, db: Db) -> dict[str, Any]:
    return technician_out(_technician(db, tech_id))


@router.patch("/technicians/{tech_id}")
def patch_technician(tech_id: PathId, body: TechnicianPatch, db: Db) -> dict[str, Any]:
    t = _technician(db, tech_id)
    fields = body.model_dump(exclude_unset=True)
    for k in ("name", "lang", "active"):
        if k in fields and fields[k] is None:
            raise ApiError(422, "maint.error.null_field", fields=k)
    for k, v in fields.items():
        setattr(t, k, v)
    db.commit()
    return technician_out(t)


@router.delete("/technicians/{tech_id}")
def delete_technician(tech_id: PathId, db: Db) -> dict[str, Any]:
    """Technicians leave but their deliveries stay on record: they are deactivated."""
    t = _technician(db, tech_id)
    t.active = False
    for target in db.scalars(select(NotificationTarget).where(NotificationTarget.technician_id == t.id)):
        target.enabled = False
    db.commit()
    return technician_out(t)


@router.post("/notification-targets", status_code=201)
def create_target(body: TargetIn, db: Db) -> dict[str, Any]:
    site = body.site
    if body.technician_id is not None:
        tech = db.get(Technician, body.technician_id)
        if tech is None:
            raise unknown_ref("technician", body.technician_id)
        if site is not None and site != tech.site:
            raise ApiError(422, "maint.error.target_site", site=site, technician_site=tech.site)
        site = tech.site
    if site is None:
        raise ApiError(422, "maint.error.target_needs_site")
    if db.get(Site, site) is None:
        raise unknown_ref("site", site)
    _check_address(body.channel, body.address)
    t = NotificationTarget(site=site, technician_id=body.technician_id, channel=body.channel, address=body.address,
                           escalation_only=body.escalation_only, enabled=body.enabled)
    db.add(t)
    db.commit()
    return target_out(t)


@router.get("/notification-targets")
def list_targets(db: Db, site: Annotated[str | None, Query(max_length=8)] = None) -> list[dict[str, Any]]:
    q = select(NotificationTarget).order_by(NotificationTarget.id)
    if site is not None:
        q = q.where(NotificationTarget.site == site)
    return [target_out(t) for t in db.scalars(q)]


@router.get("/notification-targets/{target_id}")
def get_target(target_id: PathId, db: Db) -> dict[str, Any]:
    return target_out(_target(db, target_id))


@router.patch("/notification-targets/{target_id}")
def patch_target(target_id: PathId, body: TargetPatch, db: Db) -> dict[str, Any]:
    t = _target(db, target_id)
    fields = body.model_dump(exclude_unset=True)
    if any(v is None for v in fields.values()):
        raise ApiError(422, "maint.error.null_field", fields=", ".join(k for k, v in fields.items() if v is None))
    if "address" in fields:
        _check_address(t.channel, fields["address"])
    for k, v in fields.items():
        setattr(t, k, v)
    db.commit()
    return target_out(t)


@router.delete("/notification-targets/{target_id}", status_code=204)
def delete_target(target_id: PathId, db: Db) -> None:
    """A target with deliveries on record is disabled, one without is removed."""
    t = _target(db, target_id)
    if db.scalar(select(NotificationDelivery.id).where(NotificationDelivery.target_id == t.id).limit(1)) is None:
        db.delete(t)
    else:
        t.enabled = False
    db.commit()


@router.get("/notifications")
def list_deliveries(
    db: Db,
    status: Literal["pending", "sent", "failed"] | None = None,
    alert: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    channel: Channel | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    q = select(NotificationDelivery).order_by(NotificationDelivery.id.desc()).limit(limit)
    if status is not None:
        q = q.where(NotificationDelivery.status == status)
    if alert is not None:
        q = q.where(NotificationDelivery.alert_id == alert)
    if channel is not None:
        q = q.where(NotificationDelivery.channel == channel)
    return [delivery_out(d) for d in db.scalars(q)]


# --------------------------------------------------------------------------- work orders


class Part(_In):
    name: Who
    qty: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)] = 1
    ref: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None


class WorkOrderIn(_In):
    machine: Ident | None = None
    alert_id: RowId | None = None
    plan_id: RowId | None = None
    title: Text | None = None
    by: Who | None = None


class WorkIn(_In):
    work_done: Annotated[str, StringConstraints(max_length=5000)] | None = None
    parts: Annotated[list[Part], Field(max_length=100)] | None = None
    minutes_spent: Annotated[int, Field(ge=0, le=100_000)] | None = None


class CloseIn(WorkIn):
    by: Who | None = None


def _work(body: WorkIn) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True, exclude={"by"})
    if any(v is None for v in fields.values()):
        raise ApiError(422, "maint.error.null_field", fields=", ".join(k for k, v in fields.items() if v is None))
    return fields


@router.post("/work-orders", status_code=201)
def open_work_order(body: WorkOrderIn, db: Db) -> dict[str, Any]:
    wo = workorders.open_work_order(db, utcnow(), title=body.title, machine_id=body.machine, alert_id=body.alert_id,
                                    plan_id=body.plan_id, by=body.by)
    db.commit()
    return work_order_out(wo)


@router.get("/work-orders")
def list_work_orders(db: Db, machine: Annotated[str | None, Query(max_length=48)] = None,
                     state: Literal["open", "closed"] | None = None) -> list[dict[str, Any]]:
    from .models import WorkOrder

    q = select(WorkOrder).order_by(WorkOrder.opened_at.desc(), WorkOrder.id.desc())
    if machine is not None:
        q = q.where(WorkOrder.machine == machine)
    if state is not None:
        q = q.where(WorkOrder.state == state)
    return [work_order_out(w) for w in db.scalars(q)]


@router.get("/work-orders/{wo_id}")
def get_work_order(wo_id: PathId, db: Db) -> dict[str, Any]:
    return work_order_out(workorders.get_work_order(db, wo_id))


@router.patch("/work-orders/{wo_id}")
def record_work(wo_id: PathId, body: WorkIn, db: Db) -> dict[str, Any]:
    wo = workorders.record_work(db, wo_id, **_work(body))
    db.commit()
    return work_order_out(wo)


@router.post("/work-orders/{wo_id}/close")
def close_work_order(wo_id: PathId, db: Db, body: CloseIn | None = None) -> dict[str, Any]:
    body = body or CloseIn()
    wo = workorders.close_work_order(db, wo_id, utcnow(), by=body.by, **_work(body))
    db.commit()
    return work_order_out(wo)


# --------------------------------------------------------------------------- machines


class LockIn(_In):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=150)] | None = None
    by: Who | None = None


def _machine_state(m: Machine) -> dict[str, Any]:
    return {"id": m.id, "locked": m.locked, "lock_reason": m.lock_reason}


@router.post("/machines/{machine_id}/lock")
def lock_machine(machine_id: str, db: Db, request: Request, body: LockIn | None = None) -> dict[str, Any]:
    body = body or LockIn()
    m = workorders.lock(db, machine_id, body.reason, body.by)
    audit(db, request, "machine.locked", "machine", m.id, {"reason": m.lock_reason, "by": body.by,
                                                           "via": "maintenance"})
    db.commit()
    return _machine_state(m)


@router.post("/machines/{machine_id}/unlock")
def unlock_machine(machine_id: str, db: Db, request: Request) -> dict[str, Any]:
    m = workorders.unlock(db, machine_id)
    audit(db, request, "machine.unlocked", "machine", m.id, {"via": "maintenance"})
    db.commit()
    return _machine_state(m)


@router.get("/machines/{machine_id}/maintenance")
def machine_maintenance(machine_id: str, db: Db) -> dict[str, Any]:
    out = workorders.machine_record(db, machine_id, utcnow())
    db.commit()  # counters created on first look
    return out


@router.get("/maintenance/summary")
def maintenance_summary(db: Db, site: Annotated[str | None, Query(max_length=8)] = None) -> dict[str, Any]:
    return workorders.summary(db, site)


@router.post("/maintenance/evaluate")
def run_evaluation(db: Db) -> dict[str, int]:
    """Run the clock-driven rules now (calendar plans, offline machines, escalation)."""
    out = evaluate(db, utcnow())
    db.commit()
    return out
