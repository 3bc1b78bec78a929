"""JSON shapes of the maintenance records (API, CLI). Times are UTC ISO 8601."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .models import Alert, MaintenancePlan, NotificationDelivery, NotificationTarget, PlanCounter, Technician, WorkOrder


def iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z") if t else None


def plan_out(p: MaintenancePlan, counters: list[PlanCounter] | None = None) -> dict[str, Any]:
    out = {
        "id": p.id, "machine": p.machine, "machine_type": p.machine_type, "kind": p.kind, "interval": p.interval,
        "due_soon_share": p.due_soon_share, "task": p.task, "metric": p.metric, "above": p.above, "for_s": p.for_s,
        "fault_code": p.fault_code, "critical": p.critical, "enabled": p.enabled, "created_at": iso(p.created_at),
    }
    if counters is not None:
        out["counters"] = [counter_out(c) for c in counters]
    return out


def counter_out(c: PlanCounter) -> dict[str, Any]:
    return {
        "machine": c.machine, "run_h": round(c.run_ms / 3_600_000, 2), "status": c.status, "cycle": c.cycle,
        "last_service_on": c.last_service_on.isoformat() if c.last_service_on else None,
    }


def alert_out(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id, "site": a.site, "machine": a.machine, "kind": a.kind, "cause": a.cause, "state": a.state,
        "critical": a.critical, "plan": a.plan_id, "detail": a.detail or {}, "raised_at": iso(a.raised_at),
        "cleared_at": iso(a.cleared_at), "acknowledged_at": iso(a.acknowledged_at), "acknowledged_by": a.acknowledged_by,
        "resolved_at": iso(a.resolved_at), "resolved_by": a.resolved_by, "escalated_at": iso(a.escalated_at),
    }


def technician_out(t: Technician) -> dict[str, Any]:
    return {"id": t.id, "site": t.site, "name": t.name, "phone": t.phone, "email": t.email, "lang": t.lang,
            "active": t.active}


def target_out(t: NotificationTarget) -> dict[str, Any]:
    return {"id": t.id, "site": t.site, "technician": t.technician_id, "channel": t.channel, "address": t.address,
            "escalation_only": t.escalation_only, "enabled": t.enabled}


def delivery_out(d: NotificationDelivery) -> dict[str, Any]:
    return {"id": d.id, "alert": d.alert_id, "target": d.target_id, "event": d.event, "channel": d.channel,
            "status": d.status, "attempts": d.attempts, "last_error": d.last_error,
            "next_attempt_at": iso(d.next_attempt_at), "sent_at": iso(d.sent_at), "created_at": iso(d.created_at)}


def work_order_out(w: WorkOrder) -> dict[str, Any]:
    return {
        "id": w.id, "site": w.site, "machine": w.machine, "alert": w.alert_id, "plan": w.plan_id, "title": w.title,
        "state": w.state, "work_done": w.work_done, "parts": w.parts or [], "minutes_spent": w.minutes_spent,
        "opened_at": iso(w.opened_at), "opened_by": w.opened_by, "closed_at": iso(w.closed_at), "closed_by": w.closed_by,
    }
