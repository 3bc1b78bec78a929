"""Security API: login (OAuth2 password flow), the caller, user management, the audit log and
security alerts. Mounted by create_app (server/<part>/api.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ..api.deps import Authorized, CurrentUser, Db, Settings
from ..errors import not_found
from ..models import utcnow
from .audit import audit, entry_out
from .login import login
from .models import AuditEntry, SecurityAlert, User
from .users import create_user, get_user, reset_password, set_active, user_out

router = APIRouter(prefix="/api/v1", tags=["security"])

MAX_ID = 2**31 - 1
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
Password = Annotated[str, Field(min_length=1, max_length=256)]
Username = Annotated[str, Field(min_length=1, max_length=64)]


def client_ip(request: Request) -> str:
    """The peer address (a reverse proxy in front must be trusted explicitly: not done here)."""
    return request.client.host if request.client else "unknown"


@router.post("/auth/token")
def token(
    request: Request,
    db: Db,
    settings: Settings,
    username: Annotated[str, Form(min_length=1, max_length=200)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
) -> dict[str, Any]:
    """OAuth2 password flow: a short-lived bearer token (``expires_in`` seconds)."""
    out = login(db, settings, username, password, client_ip(request), utcnow())
    return {"access_token": out.token, "token_type": "bearer", "expires_in": out.expires_in}


@router.get("/auth/me", dependencies=[Authorized])
def me(who: CurrentUser) -> dict[str, Any]:
    return {"name": who.name, "kind": who.kind, "role": who.role, "artisan_id": who.artisan_id, "site": who.site}


# --------------------------------------------------------------------------- users


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserIn(_In):
    username: Username
    password: Password
    role: Literal["manager", "technician", "artisan"]
    artisan_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None
    site: Annotated[str, Field(pattern=r"^[A-Z0-9]{2,8}$")] | None = None


class PasswordIn(_In):
    password: Password


@router.post("/users", status_code=201, dependencies=[Authorized])
def add_user(body: UserIn, request: Request, db: Db) -> dict[str, Any]:
    user = create_user(db, body.username, body.password, body.role, body.artisan_id, body.site)
    audit(db, request, "user.created", "user", user.username,
          {"role": user.role, "artisan_id": user.artisan_id, "site": user.site})
    db.commit()
    return user_out(user)


@router.get("/users", dependencies=[Authorized])
def list_users(db: Db) -> list[dict[str, Any]]:
    return [user_out(u) for u in db.scalars(select(User).order_by(User.id))]


@router.get("/users/{user_id}", dependencies=[Authorized])
def one_user(user_id: PathId, db: Db) -> dict[str, Any]:
    return user_out(get_user(db, user_id))


@router.post("/users/{user_id}/password", dependencies=[Authorized])
def set_password(user_id: PathId, body: PasswordIn, request: Request, db: Db) -> dict[str, Any]:
    user = reset_password(db, get_user(db, user_id), body.password)
    audit(db, request, "user.password_reset", "user", user.username)
    db.commit()
    return user_out(user)


@router.post("/users/{user_id}/deactivate", dependencies=[Authorized])
def deactivate(user_id: PathId, request: Request, db: Db) -> dict[str, Any]:
    user = set_active(get_user(db, user_id), False)
    audit(db, request, "user.deactivated", "user", user.username)
    db.commit()
    return user_out(user)


@router.post("/users/{user_id}/activate", dependencies=[Authorized])
def activate(user_id: PathId, request: Request, db: Db) -> dict[str, Any]:
    user = set_active(get_user(db, user_id), True)
    audit(db, request, "user.activated", "user", user.username)
    db.commit()
    return user_out(user)


# --------------------------------------------------------------------------- audit, alerts


@router.get("/audit", dependencies=[Authorized])
def read_audit(
    db: Db,
    entity: Annotated[str | None, Query(max_length=32)] = None,
    entity_id: Annotated[str | None, Query(max_length=120)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=120)] = None,
    since: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[dict[str, Any]]:
    """Newest first."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    if entity is not None:
        q = q.where(AuditEntry.entity == entity)
    if entity_id is not None:
        q = q.where(AuditEntry.entity_id == entity_id)
    if action is not None:
        q = q.where(AuditEntry.action == action)
    if actor is not None:
        q = q.where(AuditEntry.actor == actor)
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.timezone.utc)
        q = q.where(AuditEntry.at >= since)
    return [entry_out(e) for e in db.scalars(q)]


def _alert_out(a: SecurityAlert) -> dict[str, Any]:
    return {
        "id": a.id,
        "raised_at": a.raised_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "kind": a.kind,
        "site": a.site,
        "badge_uid": a.badge_uid,
        "state": a.state,
        "detail": a.detail,
    }


@router.get("/security/alerts", dependencies=[Authorized])
def security_alerts(
    db: Db,
    state: Annotated[Literal["open", "acknowledged"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    q = select(SecurityAlert).order_by(SecurityAlert.id.desc()).limit(limit)
    if state is not None:
        q = q.where(SecurityAlert.state == state)
    return [_alert_out(a) for a in db.scalars(q)]


class AlertAck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[str, Field(max_length=500)] = ""


@router.post("/security/alerts/{alert_id}/ack", dependencies=[Authorized])
def acknowledge_security_alert(alert_id: PathId, request: Request, db: Db,
                               body: AlertAck | None = None) -> dict[str, Any]:
    """A manager has looked into the finding (e.g. replaced the copied badge). Acknowledging
    twice changes nothing; who and when are in the audit log."""
    a = db.get(SecurityAlert, alert_id)
    if a is None:
        raise not_found("security alert", alert_id)
    if a.state != "acknowledged":
        a.state = "acknowledged"
        audit(db, request, "security_alert.acknowledged", "security_alert", a.id,
              {"kind": a.kind, "badge_uid": a.badge_uid, "note": (body.note if body else "")})
        db.commit()
    return _alert_out(a)
