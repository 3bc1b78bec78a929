"""Registered by create_app: after each ingest, look for one badge active on two machines."""

from __future__ import annotations

from sqlalchemy.orm import Session as DbSession

from crp_common.events import GatewayKind

from ..ingest import Ingested, on_ingested
from .clones import check_badge_clones

SESSION_KINDS = {str(GatewayKind.SESSION_OPEN), str(GatewayKind.SESSION_CLOSE)}


@on_ingested
def badge_clone_hook(db: DbSession, ingested: Ingested) -> None:
    if any(e.get("kind") in SESSION_KINDS for e in ingested.events):
        check_badge_clones(db, ingested.machines)
