"""People who log in: create, reset password, (de)activate. Used by the API and the CLI."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from ..errors import ApiError, conflict, not_found, unknown_ref
from ..models import Artisan, Site, utcnow
from .models import ROLES, User
from .passwords import hash_password, password_problem

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,63}$")


def normalize_username(name: str) -> str:
    return name.strip().lower()


def check_username(name: str) -> str:
    u = normalize_username(name)
    if not USERNAME_RE.match(u):
        raise ApiError(422, "security.error.bad_username", username=name[:64])
    return u


def _check_password(password: str) -> None:
    problem = password_problem(password)
    if problem is not None:
        raise ApiError(422, "security.error.weak_password", detail=problem)


def create_user(db: DbSession, username: str, password: str, role: str, artisan_id: int | None = None,
                site: str | None = None) -> User:
    """Validate and add a user (not committed). Artisans must name their artisan record."""
    u = check_username(username)
    if role not in ROLES:
        raise ApiError(422, "security.error.bad_role", role=role[:20], roles=", ".join(ROLES))
    if (role == "artisan") != (artisan_id is not None):
        raise ApiError(422, "security.error.artisan_id_rule")
    if artisan_id is not None:
        a = db.get(Artisan, artisan_id)
        if a is None:
            raise unknown_ref("artisan", artisan_id)
        site = site or a.site
    if site is not None and db.get(Site, site) is None:
        raise unknown_ref("site", site)
    _check_password(password)
    if db.scalar(select(User.id).where(User.username == u)) is not None:
        raise conflict("user", u)
    user = User(username=u, password_hash=hash_password(password), role=role, artisan_id=artisan_id, site=site,
                active=True, failed_logins=0, token_version=1, created_at=utcnow())
    db.add(user)
    db.flush()
    return user


def get_user(db: DbSession, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


def reset_password(db: DbSession, user: User, password: str) -> User:
    """New password; tokens issued before stop working; the failure count starts again."""
    _check_password(password)
    user.password_hash = hash_password(password)
    user.token_version += 1
    user.failed_logins = 0
    return user


def set_active(user: User, active: bool) -> User:
    if user.active != active:
        user.active = active
        user.token_version += 1
    return user


def user_out(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "artisan_id": user.artisan_id,
        "site": user.site,
        "active": user.active,
        "failed_logins": user.failed_logins,
        "last_login_at": user.last_login_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        if user.last_login_at else None,
    }
