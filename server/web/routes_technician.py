"""The technician's pages (managers may use them too, as the API allows): open alerts
(acknowledge, open a work order), work orders (record work, close), lock and unlock a machine,
what is coming due. Forms call the maintenance API's own endpoint functions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from crp_common.i18n import tr

from ..api.deps import Db, Settings
from ..maintenance import api as maint_api
from ..maintenance.models import Alert, MaintenancePlan, PlanCounter, WorkOrder
from ..maintenance.views import alert_out, work_order_out
from ..models import Machine, Site
from ..timeutil import zone
from .forms import Invalid, clean, one_transaction, validate
from .gate import RowId, page_gate
from .pages import done, refusal_page
from .render import local_time, page_lang, render

router = APIRouter(tags=["web pages (HTML)"], default_response_class=HTMLResponse)
CLOSED_WORK_ORDERS_SHOWN = 20
DUE_STATES = ("due_soon", "due", "overdue")
WO_ERRORS = {"maint.error.work_order_closed": "work_done", "maint.error.alert_has_work_order": "title",
             "maint.error.alert_resolved": "title", "maint.error.work_order_title": "title",
             "maint.error.work_order_target": "machine", "server.error.unknown_ref:machine": "machine",
             "maint.error.null_field": "work_done"}


def _when(db: DbSession, settings):  # noqa: ANN001, ANN202
    s = db.get(Site, settings.default_site) if settings.default_site else None
    s = s or db.scalars(select(Site).order_by(Site.code)).first()
    tz = zone(s.tz if s else None, settings.default_tz)
    return lambda t: local_time(t, tz)


def _names(db: DbSession) -> dict[str, str]:
    return {m.id: m.name for m in db.scalars(select(Machine))}


def _by(who) -> str | None:  # noqa: ANN001
    return who.name[:120] if who is not None else None


# --------------------------------------------------------------------------- alerts


def _alerts_page(request: Request, db: DbSession, settings, who, form_key="", errors=None, values=None,  # noqa: ANN001
                 status=200) -> Response:
    alerts = [alert_out(a) for a in db.scalars(
        select(Alert).where(Alert.state != "resolved").order_by(Alert.raised_at.desc(), Alert.id.desc()))]
    busy = {w.alert_id: w.id for w in db.scalars(select(WorkOrder).where(WorkOrder.state == "open"))
            if w.alert_id is not None}
    return render(request, "tech_alerts.html", status=status, who=who, alerts=alerts, busy=busy, names=_names(db),
                  when=_when(db, settings), form_key=form_key, errors=errors or {}, values=values or {})


@router.get("/tech/alerts")
def alerts_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return _alerts_page(request, db, settings, gate.who)


@router.post("/tech/alerts/{alert_id}/ack")
def ack_alert(request: Request, alert_id: RowId, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    try:
        with one_transaction(db, lang) as tx:
            maint_api.ack_alert(alert_id, tx, maint_api.AlertAction(by=_by(gate.who)))
    except Invalid as e:
        return _alerts_page(request, db, settings, gate.who, f"alert-{alert_id}", e.errors, {}, 409)
    return done(request, "/tech/alerts", "acknowledged")


# --------------------------------------------------------------------------- work orders


def _work_orders_page(request: Request, db: DbSession, settings, who, form_key="", errors=None,  # noqa: ANN001
                      values=None, status=200) -> Response:
    open_wos = [work_order_out(w) for w in db.scalars(
        select(WorkOrder).where(WorkOrder.state == "open").order_by(WorkOrder.opened_at.desc(), WorkOrder.id.desc()))]
    closed = [work_order_out(w) for w in db.scalars(
        select(WorkOrder).where(WorkOrder.state == "closed").order_by(WorkOrder.closed_at.desc(), WorkOrder.id.desc())
        .limit(CLOSED_WORK_ORDERS_SHOWN))]
    names = _names(db)
    return render(request, "tech_work_orders.html", status=status, who=who, open_wos=open_wos, closed=closed,
                  names=names, machine_options=[("", "—"), *sorted(names.items(), key=lambda kv: kv[1])],
                  when=_when(db, settings), form_key=form_key, errors=errors or {}, values=values or {})


@router.get("/tech/work-orders")
def work_orders_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return _work_orders_page(request, db, settings, gate.who)


@router.post("/tech/work-orders")
async def open_work_order(request: Request, db: Db, settings: Settings) -> Response:
    """From an alert (``alert_id``) or by hand (``machine`` and ``title``)."""
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    values = clean(dict(await request.form()), ("alert_id", "machine", "title"))
    from_alert = "alert_id" in values
    key = f"alert-{values['alert_id']}" if from_alert else "new"
    try:
        if not from_alert and "machine" not in values:
            raise Invalid({"machine": tr("web.error.required", lang)})
        if not from_alert and "title" not in values:
            raise Invalid({"title": tr("web.error.required", lang)})
        body = validate(maint_api.WorkOrderIn, {**values, "by": _by(gate.who)}, lang)
        with one_transaction(db, lang, WO_ERRORS) as tx:
            wo = maint_api.open_work_order(body, tx)
    except Invalid as e:
        if from_alert:
            return _alerts_page(request, db, settings, gate.who, key, e.errors, values, 422)
        return _work_orders_page(request, db, settings, gate.who, key, e.errors, values, 422)
    return done(request, "/tech/work-orders", "wo_opened", number=str(wo["id"]))


def _work_fields(values: dict[str, Any]) -> dict[str, Any]:
    return {k: values[k] for k in ("work_done", "minutes_spent") if k in values}


@router.post("/tech/work-orders/{wo_id}/work")
async def record_work(request: Request, wo_id: RowId, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    values = clean(dict(await request.form()), ("work_done", "minutes_spent"))
    try:
        if not values:
            raise Invalid({"work_done": tr("web.error.required", lang)})
        body = validate(maint_api.WorkIn, _work_fields(values), lang)
        with one_transaction(db, lang, WO_ERRORS) as tx:
            maint_api.record_work(wo_id, body, tx)
    except Invalid as e:
        return _work_orders_page(request, db, settings, gate.who, f"wo-{wo_id}", e.errors, values, 422)
    return done(request, "/tech/work-orders", "work_recorded", number=str(wo_id))


@router.post("/tech/work-orders/{wo_id}/close")
async def close_work_order(request: Request, wo_id: RowId, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    values = clean(dict(await request.form()), ("work_done", "minutes_spent"))
    try:
        body = validate(maint_api.CloseIn, {**_work_fields(values), "by": _by(gate.who)}, lang)
        with one_transaction(db, lang, WO_ERRORS) as tx:
            maint_api.close_work_order(wo_id, tx, body)
    except Invalid as e:
        return _work_orders_page(request, db, settings, gate.who, f"wo-{wo_id}", e.errors, values, 422)
    return done(request, "/tech/work-orders", "wo_closed", number=str(wo_id))


# --------------------------------------------------------------------------- lock-out


def _machines_page(request: Request, db: DbSession, who, form_key="", errors=None, values=None,  # noqa: ANN001
                   status=200) -> Response:
    machines = list(db.scalars(select(Machine).order_by(Machine.name, Machine.id)))
    return render(request, "tech_machines.html", status=status, who=who, machines=machines, form_key=form_key,
                  errors=errors or {}, values=values or {})


@router.get("/tech/machines")
def machines_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return _machines_page(request, db, gate.who)


@router.post("/tech/machines/{machine_id}/lock")
async def lock_machine(request: Request, machine_id: str, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    values = clean(dict(await request.form()), ("reason",))
    key = f"m-{machine_id}"
    try:
        if "reason" not in values:
            raise Invalid({"reason": tr("web.error.required", lang)})
        body = validate(maint_api.LockIn, {**values, "by": _by(gate.who)}, lang)
        with one_transaction(db, lang) as tx:
            maint_api.lock_machine(machine_id, tx, request, body)
    except Invalid as e:
        return _machines_page(request, db, gate.who, key, e.errors, values, 422)
    return done(request, "/tech/machines", "locked", number=machine_id)


@router.post("/tech/machines/{machine_id}/unlock")
def unlock_machine(request: Request, machine_id: str, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    try:
        with one_transaction(db, lang) as tx:
            maint_api.unlock_machine(machine_id, tx, request)
    except Invalid as e:
        return _machines_page(request, db, gate.who, f"m-{machine_id}", e.errors, {}, 422)
    return done(request, "/tech/machines", "unlocked", number=machine_id)


# --------------------------------------------------------------------------- coming due


def due_rows(db: DbSession) -> list[dict[str, Any]]:
    """Every (plan, machine) counter that is due soon, due or overdue, most urgent first."""
    order = {s: i for i, s in enumerate(reversed(DUE_STATES))}
    q = (select(PlanCounter, MaintenancePlan).join(MaintenancePlan, MaintenancePlan.id == PlanCounter.plan_id)
         .where(PlanCounter.status.in_(DUE_STATES), MaintenancePlan.enabled.is_(True)))
    rows = []
    for c, p in db.execute(q):
        rows.append({"plan": p.id, "task": p.task, "kind": p.kind, "interval": p.interval, "machine": c.machine,
                     "status": c.status, "run_h": round(c.run_ms / 3_600_000, 1),
                     "last_service_on": c.last_service_on.isoformat() if c.last_service_on else None})
    rows.sort(key=lambda r: (order.get(r["status"], 9), r["machine"], r["plan"]))
    return rows


@router.get("/tech/due")
def due_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    plans = list(db.scalars(select(MaintenancePlan).where(MaintenancePlan.enabled.is_(True))
                            .order_by(MaintenancePlan.id)))
    return render(request, "tech_due.html", who=gate.who, rows=due_rows(db), plans=plans, names=_names(db))
