"""Login: the OAuth2 password flow behind POST /api/v1/auth/token, rate limited per username
and per client address (:mod:`.ratelimit`). Every attempt is kept in ``login_attempts``."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from ..errors import ApiError
from ..settings import ServerSettings
from .models import LoginAttempt, User
from .passwords import verify_password
from .ratelimit import LOGIN_MAX_FAILURES, LOGIN_WINDOW_S, retry_after
from .tokens import issue_token
from .users import normalize_username

log = logging.getLogger("crp.security")
MAX_USERNAME_CHARS = 64


@dataclass(frozen=True)
class Login:
    token: str
    expires_in: int
    user: User


def bad_credentials() -> ApiError:
    return ApiError(401, "security.error.bad_credentials", headers={"WWW-Authenticate": "Bearer"})


def _failures(db: DbSession, column, value: str, since: dt.datetime) -> list[dt.datetime]:  # noqa: ANN001
    q = select(LoginAttempt.at).where(column == value, LoginAttempt.ok.is_(False), LoginAttempt.at > since)
    return list(db.scalars(q.order_by(LoginAttempt.at.desc()).limit(LOGIN_MAX_FAILURES * 4)))


def check_rate(db: DbSession, username: str, ip: str, now: dt.datetime) -> None:
    """429 with Retry-After while the username or the address has too many recent failures."""
    since = now - dt.timedelta(seconds=LOGIN_WINDOW_S)
    waits = [
        retry_after(_failures(db, LoginAttempt.username, username, since), now),
        retry_after(_failures(db, LoginAttempt.ip, ip, since), now),
    ]
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        log.warning("login rate limited: user %r from %s, retry in %d s", username, ip, wait)
        raise ApiError(429, "security.error.too_many_attempts", headers={"Retry-After": str(wait)}, seconds=wait)


def login(db: DbSession, settings: ServerSettings, username: str, password: str, ip: str,
          now: dt.datetime) -> Login:
    name = normalize_username(username)[:MAX_USERNAME_CHARS]
    ip = ip[:64]
    check_rate(db, name, ip, now)
    user = db.scalar(select(User).where(User.username == name))
    usable = user is not None and user.active
    ok = verify_password(user.password_hash if usable else None, password)
    db.add(LoginAttempt(at=now, username=name, ip=ip, ok=ok))
    if not ok:
        if user is not None:
            user.failed_logins += 1
        db.commit()
        log.warning("failed login for %r from %s", name, ip)
        raise bad_credentials()
    user.failed_logins = 0
    user.last_login_at = now
    db.commit()
    token, _exp = issue_token(settings.secret_key, user_id=user.id, username=user.username, role=user.role,
                              artisan_id=user.artisan_id, site=user.site, version=user.token_version,
                              now_s=int(now.timestamp()), ttl_s=settings.token_ttl_s)
    return Login(token=token, expires_in=settings.token_ttl_s, user=user)
