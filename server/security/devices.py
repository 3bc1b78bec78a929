"""MQTT devices: provision a node (one machine), a metering plug (one machine, its firmware's
topics) or a gateway (one site) with its own broker user. The password is generated, shown
once and never stored: only its Mosquitto hash."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from crp_common.contract import ID_RE, SITE_RE

from ..errors import ApiError, conflict, not_found, unknown_ref
from ..models import Machine, Site, utcnow
from .audit import audit
from .broker_config import DeviceEntry, mosquitto_hash, new_device_password
from .models import DEVICE_KINDS, PLUG_TYPES, Device

PLUG_TOPIC_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}(/[A-Za-z0-9_.:-]{1,64}){0,3}$")


@dataclass(frozen=True)
class Provisioned:
    device: Device
    password: str  # show once


def add_device(db: DbSession, actor: Any, kind: str, device_id: str, site: str,
               machine: str | None = None, plug_type: str | None = None, plug_topic: str | None = None) -> Provisioned:
    """Validate and add a device (not committed); nodes and plugs belong to a machine of the
    site; a plug also names its firmware (``plug_type``) and device topic (``plug_topic``)."""
    if kind not in DEVICE_KINDS:
        raise ApiError(422, "security.error.bad_device_kind", kind=kind[:20])
    if not ID_RE.match(device_id):
        raise ApiError(422, "error.invalid", detail=f"id {device_id[:48]!r}: lowercase letters, digits, '-'")
    if not SITE_RE.match(site) or db.get(Site, site) is None:
        raise unknown_ref("site", site[:8])
    if kind == "plug":
        if plug_type not in PLUG_TYPES:
            raise ApiError(422, "security.error.bad_plug_type", value=str(plug_type)[:20], known=", ".join(PLUG_TYPES))
        # One MQTT level for a Tasmota %topic% or a Shelly Gen1 id; a Gen2 prefix may have a few.
        if not plug_topic or not PLUG_TOPIC_RE.match(plug_topic) or (plug_type != "shelly2" and "/" in plug_topic):
            raise ApiError(422, "security.error.bad_plug_topic", value=str(plug_topic)[:64])
        taken = db.scalar(select(Device.username).where(Device.kind == "plug", Device.active.is_(True),
                                                        Device.plug_type == plug_type, Device.plug_topic == plug_topic))
        if taken is not None:
            raise ApiError(409, "security.error.plug_topic_taken", value=plug_topic, device=taken)
    elif plug_type is not None or plug_topic is not None:
        raise ApiError(422, "security.error.not_a_plug")
    if kind in ("node", "plug"):
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
    d = Device(username=device_id, kind=kind, site=site, machine=machine, plug_type=plug_type, plug_topic=plug_topic,
               password_hash=mosquitto_hash(password), active=True, created_at=utcnow())
    db.add(d)
    audit(db, actor, "device.added", "device", device_id, {"kind": kind, "site": site, "machine": machine,
                                                            "plug_type": plug_type, "plug_topic": plug_topic})
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
    return [DeviceEntry(d.username, d.kind, d.site, d.machine, d.password_hash, d.plug_type, d.plug_topic)
            for d in db.scalars(q)]
