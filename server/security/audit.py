"""The append-only audit log: who changed money or machine locks, issued or revoked badges,
created users. One helper, :func:`audit`, adds the entry to the caller's transaction (the
caller commits with its change, so the change and its record land together)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session as DbSession

from ..models import utcnow
from .models import AuditEntry
from .principal import SYSTEM, Principal

MAX_DETAILS_CHARS = 8000


def actor_of(request_or_actor: Any) -> Principal:
    """A Principal from a Request (set by the access check), a Principal, or a name."""
    if isinstance(request_or_actor, Principal):
        return request_or_actor
    if request_or_actor is None:
        return SYSTEM
    if isinstance(request_or_actor, str):
        return Principal(kind="system", name=request_or_actor, role="system")
    state = getattr(request_or_actor, "state", None)
    p = getattr(state, "principal", None) if state is not None else None
    return p if isinstance(p, Principal) else Principal(kind="unknown", name="unknown", role="unknown")


def _jsonable(details: dict[str, Any] | None) -> dict[str, Any]:
    data = json.loads(json.dumps(details or {}, default=str))
    if len(json.dumps(data)) > MAX_DETAILS_CHARS:
        return {"truncated": json.dumps(data)[:MAX_DETAILS_CHARS]}
    return data


def audit(db: DbSession, request_or_actor: Any, action: str, entity: str, entity_id: Any = None,
          details: dict[str, Any] | None = None) -> AuditEntry:
    """Record ``action`` on ``entity``/``entity_id`` by the caller. Does not commit."""
    who = actor_of(request_or_actor)
    entry = AuditEntry(
        at=utcnow(),
        actor=who.actor[:120],
        role=who.role[:16],
        action=action[:64],
        entity=entity[:32],
        entity_id=None if entity_id is None else str(entity_id)[:120],
        details=_jsonable(details),
    )
    db.add(entry)
    return entry


def entry_out(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "actor": e.actor,
        "role": e.role,
        "action": e.action,
        "entity": e.entity,
        "entity_id": e.entity_id,
        "details": e.details,
    }
