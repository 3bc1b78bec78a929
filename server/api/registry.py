"""Registry: sites, machine types, machines, artisans, badges, qualifications, gateways.
Manager endpoints, bearer ``admin_token``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import select

from crp_common.contract import BADGE_UID_RE, ID_RE, SITE_RE, TYPE_RE

from ..api_keys import hash_api_key, new_api_key
from ..errors import conflict, not_found, unknown_ref
from ..models import Artisan, Badge, Gateway, Machine, MachineType, Qualification, Site
from ..security.audit import audit
from ..timeutil import is_valid_tz
from .deps import Authorized, Db

router = APIRouter(prefix="/api/v1", tags=["registry"], dependencies=[Authorized])

SiteCode = Annotated[str, Field(pattern=SITE_RE.pattern)]
Ident = Annotated[str, Field(pattern=ID_RE.pattern)]
TypeCode = Annotated[str, Field(pattern=TYPE_RE.pattern)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
MaxTimeout = 24 * 3600
MAX_ID = 2**31 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]


def normalize_uid(v: Any) -> str:
    """Badge UIDs as the contract has them: uppercase hex, colons removed, 4/7/10 bytes."""
    if not isinstance(v, str):
        raise ValueError("uid must be a string of hex digits")
    u = v.strip().upper().replace(":", "")
    if not BADGE_UID_RE.match(u):
        raise ValueError("uid must be 8, 14 or 20 hex digits (4, 7 or 10 byte UID)")
    return u


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- sites


class SiteIn(_In):
    code: SiteCode
    name: Name
    tz: str = "Africa/Dakar"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "XOF"
    locale: Literal["fr", "en"] = "fr"

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        if not is_valid_tz(v):
            raise ValueError(f"unknown time zone {v!r}")
        return v


def site_out(s: Site) -> dict[str, Any]:
    return {"code": s.code, "name": s.name, "tz": s.tz, "currency": s.currency, "locale": s.locale}


@router.post("/sites", status_code=201)
def create_site(body: SiteIn, db: Db) -> dict[str, Any]:
    if db.get(Site, body.code) is not None:
        raise conflict("site", body.code)
    s = Site(**body.model_dump())
    db.add(s)
    db.commit()
    return site_out(s)


@router.get("/sites")
def list_sites(db: Db) -> list[dict[str, Any]]:
    return [site_out(s) for s in db.scalars(select(Site).order_by(Site.code))]


# --------------------------------------------------------------------------- machine types


class MachineTypeIn(_In):
    code: TypeCode
    name_fr: Name
    name_en: Name
    idle_timeout_s: Annotated[int, Field(ge=30, le=MaxTimeout)] = 600


def type_out(t: MachineType) -> dict[str, Any]:
    return {"code": t.code, "name_fr": t.name_fr, "name_en": t.name_en, "idle_timeout_s": t.idle_timeout_s}


@router.post("/machine-types", status_code=201)
def create_machine_type(body: MachineTypeIn, db: Db) -> dict[str, Any]:
    if db.get(MachineType, body.code) is not None:
        raise conflict("machine_type", body.code)
    t = MachineType(**body.model_dump())
    db.add(t)
    db.commit()
    return type_out(t)


@router.get("/machine-types")
def list_machine_types(db: Db) -> list[dict[str, Any]]:
    return [type_out(t) for t in db.scalars(select(MachineType).order_by(MachineType.code))]


# --------------------------------------------------------------------------- machines


class MachineIn(_In):
    id: Ident
    site: SiteCode
    type: TypeCode
    name: Name
    node_id: Ident | None = None
    locked: bool = False
    lock_reason: Annotated[str, Field(max_length=200)] | None = None


class MachinePatch(_In):
    name: Name | None = None
    locked: bool | None = None
    lock_reason: Annotated[str, Field(max_length=200)] | None = None
    node_id: Ident | None = None


def machine_out(m: Machine) -> dict[str, Any]:
    return {
        "id": m.id,
        "site": m.site,
        "type": m.type,
        "name": m.name,
        "node_id": m.node_id,
        "locked": m.locked,
        "lock_reason": m.lock_reason,
    }


def _check_node_free(db: Db, node_id: str | None, machine_id: str) -> None:
    if node_id is None:
        return
    other = db.scalar(select(Machine.id).where(Machine.node_id == node_id, Machine.id != machine_id))
    if other is not None:
        raise conflict("node", node_id)


@router.post("/machines", status_code=201)
def create_machine(body: MachineIn, db: Db) -> dict[str, Any]:
    if db.get(Site, body.site) is None:
        raise unknown_ref("site", body.site)
    if db.get(MachineType, body.type) is None:
        raise unknown_ref("machine_type", body.type)
    if db.get(Machine, body.id) is not None:
        raise conflict("machine", body.id)
    _check_node_free(db, body.node_id, body.id)
    m = Machine(**body.model_dump())
    db.add(m)
    db.commit()
    return machine_out(m)


@router.get("/machines")
def list_machines(db: Db, site: Annotated[str | None, Query(max_length=8)] = None) -> list[dict[str, Any]]:
    stmt = select(Machine).order_by(Machine.id)
    if site is not None:
        stmt = stmt.where(Machine.site == site)
    return [machine_out(m) for m in db.scalars(stmt)]


@router.get("/machines/{machine_id}")
def get_machine(machine_id: str, db: Db) -> dict[str, Any]:
    m = db.get(Machine, machine_id)
    if m is None:
        raise not_found("machine", machine_id)
    return machine_out(m)


@router.patch("/machines/{machine_id}")
def patch_machine(machine_id: str, body: MachinePatch, db: Db, request: Request) -> dict[str, Any]:
    m = db.get(Machine, machine_id)
    if m is None:
        raise not_found("machine", machine_id)
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        changes.pop("name")
    if "locked" in changes and changes["locked"] is None:
        changes.pop("locked")
    if "node_id" in changes:
        _check_node_free(db, changes["node_id"], machine_id)
    for k, v in changes.items():
        setattr(m, k, v)
    if changes.get("locked") is False and "lock_reason" not in changes:
        m.lock_reason = None
    if "locked" in changes:
        audit(db, request, "machine.locked" if m.locked else "machine.unlocked", "machine", m.id,
              {"reason": m.lock_reason, "via": "PATCH /machines"})
    db.commit()
    return machine_out(m)


# --------------------------------------------------------------------------- artisans

Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ]{6,20}$")]
Status = Literal["active", "suspended"]


class ArtisanIn(_In):
    site: SiteCode
    name: Name
    phone: Phone | None = None
    trade: Annotated[str, Field(max_length=64)] | None = None
    cooperative: Annotated[str, Field(max_length=120)] | None = None
    member: bool = True
    status: Status = "active"
    credit_blocked: bool = False


class ArtisanPatch(_In):
    name: Name | None = None
    phone: Phone | None = None
    trade: Annotated[str, Field(max_length=64)] | None = None
    cooperative: Annotated[str, Field(max_length=120)] | None = None
    member: bool | None = None
    status: Status | None = None
    credit_blocked: bool | None = None


REQUIRED_ARTISAN_FIELDS = ("name", "member", "status", "credit_blocked")


def artisan_out(a: Artisan, db: Db | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": a.id,
        "site": a.site,
        "name": a.name,
        "phone": a.phone,
        "trade": a.trade,
        "cooperative": a.cooperative,
        "member": a.member,
        "status": a.status,
        "credit_blocked": a.credit_blocked,
    }
    if db is not None:
        out["badges"] = [
            badge_out(b) for b in db.scalars(select(Badge).where(Badge.artisan == a.id).order_by(Badge.uid))
        ]
        out["qualifications"] = [
            qualification_out(q)
            for q in db.scalars(
                select(Qualification).where(Qualification.artisan == a.id).order_by(Qualification.machine_type)
            )
        ]
    return out


@router.post("/artisans", status_code=201)
def create_artisan(body: ArtisanIn, db: Db) -> dict[str, Any]:
    if db.get(Site, body.site) is None:
        raise unknown_ref("site", body.site)
    a = Artisan(**body.model_dump())
    db.add(a)
    db.commit()
    return artisan_out(a)


@router.get("/artisans")
def list_artisans(db: Db, site: Annotated[str | None, Query(max_length=8)] = None) -> list[dict[str, Any]]:
    stmt = select(Artisan).order_by(Artisan.id)
    if site is not None:
        stmt = stmt.where(Artisan.site == site)
    return [artisan_out(a) for a in db.scalars(stmt)]


def _artisan(db: Db, artisan_id: int) -> Artisan:
    a = db.get(Artisan, artisan_id)
    if a is None:
        raise not_found("artisan", artisan_id)
    return a


@router.get("/artisans/{artisan_id}")
def get_artisan(artisan_id: PathId, db: Db) -> dict[str, Any]:
    return artisan_out(_artisan(db, artisan_id), db)


@router.patch("/artisans/{artisan_id}")
def patch_artisan(artisan_id: PathId, body: ArtisanPatch, db: Db) -> dict[str, Any]:
    a = _artisan(db, artisan_id)
    for k, v in body.model_dump(exclude_unset=True).items():
        if v is None and k in REQUIRED_ARTISAN_FIELDS:
            continue
        setattr(a, k, v)
    db.commit()
    return artisan_out(a, db)


# --------------------------------------------------------------------------- badges


class BadgeIn(_In):
    uid: str
    artisan_id: RowId

    @field_validator("uid", mode="before")
    @classmethod
    def _uid(cls, v: Any) -> str:
        return normalize_uid(v)


class BadgePatch(_In):
    status: Literal["active", "revoked"]


def badge_out(b: Badge) -> dict[str, Any]:
    return {
        "uid": b.uid,
        "artisan": b.artisan,
        "status": b.status,
        "issued_at": b.issued_at.isoformat(timespec="seconds").replace("+00:00", "Z") if b.issued_at else None,
    }


@router.post("/badges", status_code=201)
def create_badge(body: BadgeIn, db: Db, request: Request) -> dict[str, Any]:
    if db.get(Artisan, body.artisan_id) is None:
        raise unknown_ref("artisan", body.artisan_id)
    if db.get(Badge, body.uid) is not None:
        raise conflict("badge", body.uid)
    b = Badge(uid=body.uid, artisan=body.artisan_id, status="active")
    db.add(b)
    audit(db, request, "badge.issued", "badge", b.uid, {"artisan": b.artisan})
    db.commit()
    return badge_out(b)


@router.get("/badges")
def list_badges(db: Db, artisan: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> list[dict[str, Any]]:
    stmt = select(Badge).order_by(Badge.uid)
    if artisan is not None:
        stmt = stmt.where(Badge.artisan == artisan)
    return [badge_out(b) for b in db.scalars(stmt)]


@router.patch("/badges/{uid}")
def patch_badge(uid: str, body: BadgePatch, db: Db, request: Request) -> dict[str, Any]:
    try:
        key = normalize_uid(uid)
    except ValueError:
        raise not_found("badge", uid[:40]) from None
    b = db.get(Badge, key)
    if b is None:
        raise not_found("badge", key)
    if b.status != body.status:
        audit(db, request, "badge.revoked" if body.status == "revoked" else "badge.reactivated", "badge", b.uid,
              {"artisan": b.artisan, "from": b.status, "to": body.status})
    b.status = body.status
    db.commit()
    return badge_out(b)


# --------------------------------------------------------------------------- qualifications


class QualificationIn(_In):
    artisan_id: RowId
    machine_type: TypeCode
    expires_on: dt.date | None = None


def qualification_out(q: Qualification) -> dict[str, Any]:
    return {
        "id": q.id,
        "artisan": q.artisan,
        "machine_type": q.machine_type,
        "expires_on": q.expires_on.isoformat() if q.expires_on else None,
    }


@router.post("/qualifications", status_code=201)
def create_qualification(body: QualificationIn, db: Db) -> dict[str, Any]:
    if db.get(Artisan, body.artisan_id) is None:
        raise unknown_ref("artisan", body.artisan_id)
    if db.get(MachineType, body.machine_type) is None:
        raise unknown_ref("machine_type", body.machine_type)
    dup = db.scalar(
        select(Qualification.id).where(
            Qualification.artisan == body.artisan_id, Qualification.machine_type == body.machine_type
        )
    )
    if dup is not None:
        raise conflict("qualification", f"{body.artisan_id}/{body.machine_type}")
    q = Qualification(artisan=body.artisan_id, machine_type=body.machine_type, expires_on=body.expires_on)
    db.add(q)
    db.commit()
    return qualification_out(q)


# --------------------------------------------------------------------------- gateways


class GatewayIn(_In):
    id: Ident
    site: SiteCode


def gateway_out(g: Gateway) -> dict[str, Any]:
    return {
        "id": g.id,
        "site": g.site,
        "last_seen": g.last_seen.isoformat(timespec="seconds").replace("+00:00", "Z") if g.last_seen else None,
    }


@router.post("/gateways", status_code=201)
def create_gateway(body: GatewayIn, db: Db) -> dict[str, Any]:
    """Returns the API key once; only its hash is stored."""
    if db.get(Site, body.site) is None:
        raise unknown_ref("site", body.site)
    if db.get(Gateway, body.id) is not None:
        raise conflict("gateway", body.id)
    key = new_api_key()
    g = Gateway(id=body.id, site=body.site, api_key_hash=hash_api_key(key))
    db.add(g)
    db.commit()
    return {"id": g.id, "site": g.site, "api_key": key}


@router.get("/gateways")
def list_gateways(db: Db) -> list[dict[str, Any]]:
    return [gateway_out(g) for g in db.scalars(select(Gateway).order_by(Gateway.id))]
