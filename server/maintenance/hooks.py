"""Plugs maintenance into the server core (imported by server.app.create_app, see
server/parts.py): ingestion evaluates new events, the snapshot carries condition rules, and
ingestion accepts the gateway's ``alert`` facts (validated by :class:`AlertBody`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from crp_common.events import GatewayKind
from crp_common.snapshot import SnapCondition

from .. import ingest
from ..background import every
from ..models import Machine
from ..snapshot_builder import on_snapshot_machines
from .evaluation import AlertBody, on_events
from .models import MaintenancePlan

# Until the core validates alert facts itself (a core definition wins: setdefault).
ingest.GATEWAY_BODIES.setdefault(GatewayKind.ALERT, AlertBody)


@ingest.on_ingested
def evaluate_ingested(db: DbSession, ingested: ingest.Ingested) -> None:
    """Alerts, lock-out and run-hour counters from the events a batch added."""
    on_events(db, ingested.events)


@on_snapshot_machines
def snapshot_conditions(db: DbSession, site: str) -> dict[str, dict[str, Any]]:
    """``{machine: {"conditions": [SnapCondition...]}}`` for the site's machines with rules
    (same rules as :func:`server.maintenance.plans.conditions_for`, in two queries)."""
    plans = db.scalars(
        select(MaintenancePlan)
        .where(MaintenancePlan.enabled.is_(True), MaintenancePlan.kind == "condition")
        .order_by(MaintenancePlan.id)
    ).all()
    if not plans:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for m in db.scalars(select(Machine).where(Machine.site == site).order_by(Machine.id)):
        rules = [
            SnapCondition(id=str(p.id), metric=p.metric, above=float(p.above), for_s=int(p.for_s or 0),
                          critical=p.critical)
            for p in plans
            if (p.machine == m.id or p.machine_type == m.type) and p.metric is not None and p.above is not None
        ]
        if rules:
            out[m.id] = {"conditions": rules}
    return out


MAINTENANCE_EVERY_S = 5.0


@every(MAINTENANCE_EVERY_S)
def maintenance_tick(db: DbSession, now: Any) -> None:
    """Calendar plans, offline checks and escalation, then deliver pending notifications."""
    from .evaluation import evaluate
    from .notify import dispatch

    evaluate(db, now)
    db.commit()
    dispatch(db, now)
