"""The authorization snapshot of one site, as the gateway caches it.

``version`` is a hash of the content (not of the time), so it changes only when something a
gateway decides on changes, and gateways can poll cheaply with If-None-Match.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from crp_common.snapshot import SnapArtisan, SnapBadge, SnapMachine, SnapQualification, SnapSite, Snapshot

from .models import Artisan, Badge, Machine, MachineType, Qualification, Site

VERSION_CHARS = 16

# fn(db, site_code) -> {machine_id: {SnapMachine field: value}}, e.g. {"bandsaw-1":
# {"conditions": [SnapCondition(...)]}}: other parts (maintenance) add to the machines.
MachineContributor = Callable[[DbSession, str], dict[str, dict[str, Any]]]
_CONTRIBUTORS: list[MachineContributor] = []


def on_snapshot_machines(fn: MachineContributor) -> MachineContributor:
    """Register a contributor of machine fields to the snapshot. Usable as a decorator."""
    if fn not in _CONTRIBUTORS:
        _CONTRIBUTORS.append(fn)
    return fn


def content_version(content: dict) -> str:
    """A stable hash of the snapshot content (everything but version and generated_at)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:VERSION_CHARS]


def build_snapshot(db: DbSession, site_code: str, now_ms: int) -> Snapshot:
    site = db.get(Site, site_code)
    if site is None:
        raise LookupError(site_code)
    machines = db.execute(
        select(Machine, MachineType.idle_timeout_s)
        .join(MachineType, MachineType.code == Machine.type)
        .where(Machine.site == site_code)
        .order_by(Machine.id)
    ).all()
    artisans = db.scalars(select(Artisan).where(Artisan.site == site_code).order_by(Artisan.id)).all()
    ids = [a.id for a in artisans]
    badges = db.scalars(select(Badge).where(Badge.artisan.in_(ids)).order_by(Badge.uid)).all() if ids else []
    quals: dict[int, list[SnapQualification]] = {}
    if ids:
        for q in db.scalars(
            select(Qualification).where(Qualification.artisan.in_(ids)).order_by(Qualification.machine_type)
        ):
            quals.setdefault(q.artisan, []).append(SnapQualification(type=q.machine_type, expires=q.expires_on))
    extra: dict[str, dict[str, Any]] = {}
    for contribute in list(_CONTRIBUTORS):
        for mid, fields in contribute(db, site_code).items():
            extra.setdefault(mid, {}).update(fields)
    content = {
        "site": SnapSite(code=site.code, name=site.name, tz=site.tz, currency=site.currency, locale=site.locale),
        "machines": [
            SnapMachine(
                **{
                    "id": m.id,
                    "type": m.type,
                    "node": m.node_id,
                    "name": m.name,
                    "locked": m.locked,
                    "lock_reason": m.lock_reason,
                    "idle_timeout_s": idle,
                    **extra.get(m.id, {}),
                }
            )
            for m, idle in machines
        ],
        "badges": [SnapBadge(uid=b.uid, artisan=b.artisan, status=b.status) for b in badges],
        "artisans": [
            SnapArtisan(
                id=a.id,
                name=a.name,
                status=a.status,
                member=a.member,
                credit_blocked=a.credit_blocked,
                qualifications=quals.get(a.id, []),
            )
            for a in artisans
        ],
    }
    dumped = {
        "site": content["site"].model_dump(mode="json"),
        "machines": [m.model_dump(mode="json") for m in content["machines"]],
        "badges": [b.model_dump(mode="json") for b in content["badges"]],
        "artisans": [a.model_dump(mode="json") for a in content["artisans"]],
    }
    return Snapshot(version=content_version(dumped), generated_at=now_ms, **content)
