"""Billing's part in ingestion: when sessions close, the artisans' credit status may change,
and the gateways must learn it through the next snapshot (credit_limit works offline)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from crp_common.events import GatewayKind

from ..ingest import Ingested, on_committed
from ..models import Session
from .service import refresh_credit_status


@on_committed
def refresh_credit_after_ingest(db: DbSession, done: Ingested) -> None:
    closed = [str(e["body"].get("session")) for e in done.events if e["kind"] == GatewayKind.SESSION_CLOSE]
    if not closed:
        return
    artisans = set(db.scalars(select(Session.artisan).where(Session.id.in_(closed))).all())
    for a in sorted(x for x in artisans if x is not None):
        refresh_credit_status(db, a)
