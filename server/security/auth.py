"""Resolve the caller of a request: ``Authorization: Bearer <admin token | access token>`` or
``X-API-Key: <gateway key>``. Invalid credentials are a 401, never a guess."""

from __future__ import annotations

import hmac
import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from ..api_keys import hash_api_key
from ..errors import ApiError, unauthorized
from ..models import Gateway
from ..settings import ServerSettings
from .models import User
from .principal import ADMIN, GATEWAY, Principal
from .tokens import TokenExpired, TokenInvalid, read_token

log = logging.getLogger("crp.security")


def token_expired() -> ApiError:
    return ApiError(401, "security.error.token_expired", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin_token(token: str, settings: ServerSettings) -> bool:
    return hmac.compare_digest(token.encode(), settings.admin_token.encode())


def user_principal(db: DbSession, settings: ServerSettings, token: str, now_s: int | None = None) -> Principal:
    try:
        claims = read_token(settings.secret_key, token, now_s)
    except TokenExpired:
        raise token_expired() from None
    except TokenInvalid:
        raise unauthorized() from None
    user = db.get(User, claims.user_id)
    if user is None or not user.active or user.token_version != claims.version:
        raise unauthorized()
    return Principal(kind="user", name=user.username, role=user.role, user_id=user.id,
                     artisan_id=user.artisan_id, site=user.site)


def gateway_principal(db: DbSession, api_key: str) -> Principal:
    gw = db.scalar(select(Gateway).where(Gateway.api_key_hash == hash_api_key(api_key.strip())))
    if gw is None:
        raise unauthorized()
    return Principal(kind="gateway", name=gw.id, role=GATEWAY, site=gw.site)


def resolve(db: DbSession, settings: ServerSettings, authorization: str | None,
            api_key: str | None) -> Principal | None:
    """The caller, or None when the request carries no credentials at all."""
    token = bearer_token(authorization)
    if token is not None:
        if is_admin_token(token, settings):
            return ADMIN
        return user_principal(db, settings, token, int(time.time()))
    if authorization:
        raise unauthorized()  # an Authorization header we cannot read
    if api_key:
        return gateway_principal(db, api_key)
    return None
