"""MQTT devices: provision a node (one machine) or a gateway (one site) with its own broker
user. The password is generated, shown once and never stored: only its Mosquitto hash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from crp_common.contract import ID_RE, SITE_RE

from ..errors import ApiError, conflict, not_found, unknown_ref
from ..models import Machine, Site, utcnow
from .audit import audit
from .broker_config import DeviceEntry, mosquitto_hash, new_device_password
from .models import DEVICE_KINDS, Device


@dataclass(frozen=True)
class Provisioned:
    device: Device
    password: str  # show once


def add_device(db: DbSession, actor: Any, kind: str, device_id: str, site: str,
               machine: str | None = None) -> Provisioned:
    """Validate and add a device (not committed); nodes belong to a machine of the site."""
    if kind not in DEVICE_KINDS:
        raise ApiError(422, "security.error.bad_device_kind", kind=kind[:20])
    if not ID_RE.match(device_id):
        raise ApiError(422, "error.invalid", detail=f"id {device_id[:48]!r}: lowercase letters, digits, '-'")
    if not SITE_RE.match(site) or db.get(Site, site) is None:
        raise unknown_ref("site", site[:8])
    if kind == "node":
        if not machine:
            raise ApiError(422, "security.error.node_needs_machine")
        m = db.get(Machine, machine)
        if m is None or m.site != site:
            raise unknown_ref("machine", machine[:48])
    elif machine is not None:
        raise ApiError(422, "security.error.gateway_no_machine")
    if db.get(Device, device_id) is not None:
        raise conflict("device", device_id)
    password = new_device_password()
    d = Device(username=device_id, kind=kind, site=site, machine=machine, password_hash=mosquitto_hash(password),
               active=True, created_at=utcnow())
    db.add(d)
    audit(db, actor, "device.added", "device", device_id, {"kind": kind, "site": site, "machine": machine})
    db.flush()
    return Provisioned(d, password)


def revoke_device(db: DbSession, actor: Any, device_id: str) -> Device:
    d = db.get(Device, device_id)
    if d is None:
        raise not_found("device", device_id)
    if d.active:
        d.active = False
        audit(db, actor, "device.revoked", "device", device_id, {"kind": d.kind, "site": d.site})
    return d


def broker_entries(db: DbSession, site: str | None = None) -> list[DeviceEntry]:
    """The active devices as the broker files need them."""
    q = select(Device).where(Device.active.is_(True)).order_by(Device.username)
    if site is not None:
        q = q.where(Device.site == site)
    return [DeviceEntry(d.username, d.kind, d.site, d.machine, d.password_hash) for d in db.scalars(q)]
