"""Shared dependencies: database session, settings, authentication."""

from __future__ import annotations

import hmac
from typing import Annotated, Iterator

from fastapi import Depends, Header, Request
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from ..api_keys import hash_api_key
from ..errors import ApiError, unauthorized
from ..models import Gateway, Site
from ..settings import ServerSettings
from ..timeutil import zone


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


def get_db(request: Request) -> Iterator[DbSession]:
    db: DbSession = request.app.state.sessionmaker()
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()


Db = Annotated[DbSession, Depends(get_db)]
Settings = Annotated[ServerSettings, Depends(get_settings)]


def require_admin(
    settings: Settings, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Bearer ``admin_token`` (until role-based auth replaces it)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    if not hmac.compare_digest(token.strip().encode(), settings.admin_token.encode()):
        raise unauthorized()


def require_gateway(db: Db, x_api_key: Annotated[str | None, Header()] = None) -> Gateway:
    if not x_api_key:
        raise unauthorized()
    gw = db.scalar(select(Gateway).where(Gateway.api_key_hash == hash_api_key(x_api_key.strip())))
    if gw is None:
        raise unauthorized()
    return gw


Admin = Depends(require_admin)
CurrentGateway = Annotated[Gateway, Depends(require_gateway)]


def site_zone(db: DbSession, settings: ServerSettings, site: str | None):
    """The time zone for date filters: the site's, else the default site's, else default_tz."""
    code = site or settings.default_site
    s = db.get(Site, code) if code else None
    if site is not None and s is None:
        raise ApiError(404, "server.error.not_found_id", what="site", id=site)
    return zone(s.tz if s else None, settings.default_tz)
