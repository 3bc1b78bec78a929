"""Shared dependencies: database session, settings, authentication and access control.

Access control (server/security):

- ``Authorized``: applies the rule of the current route from the ONE policy table
  (server/security/policy.py): the roles allowed and, for artisans, ownership of the record.
  Routers use ``dependencies=[Authorized]``; a route without a rule is refused.
- Fixed role checks, for code that wants one explicitly: ``Admin`` and ``Manager`` (a manager
  or the legacy admin token), ``Technician`` (technicians only), ``ManagerOrTechnician``,
  ``AnyUser`` (any logged-in person: manager, technician, artisan; not a gateway).
- ``CurrentUser``: the caller as a :class:`server.security.principal.Principal` (a person or
  the admin token); ``CurrentGateway``: the gateway of an ``X-API-Key``.
- ``check_artisan_access(request, db, who, artisan_id)``: 403 unless ``who`` may see that
  artisan's records (artisans: only their own); ``OwnArtisan``: the same for a route with an
  ``{artisan_id}`` path parameter.

The legacy bearer ``CRP_ADMIN_TOKEN`` keeps working everywhere a manager may go."""

from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from ..api_keys import hash_api_key
from ..errors import ApiError, unauthorized
from ..models import Gateway, Site
from ..security.principal import Principal
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

# Declared for the OpenAPI description (the "Authorize" button, schemathesis); the checks
# read the headers themselves so that a malformed header is a 401, not a silent anonymous.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="GatewayKey")


def authorize_request(
    request: Request,
    db: Db,
    settings: Settings,
    _token: Annotated[str | None, Depends(oauth2_scheme)] = None,
    _key: Annotated[str | None, Depends(api_key_scheme)] = None,
):
    from ..security.access import authorize

    return authorize(request, db, settings)


def _roles(*roles: str):
    def dep(
        request: Request,
        db: Db,
        settings: Settings,
        _token: Annotated[str | None, Depends(oauth2_scheme)] = None,
    ):
        from ..security.access import require_roles

        cached = getattr(request.state, "principal", None)
        if cached is not None and cached.role in roles:
            return cached
        return require_roles(request, db, settings, roles)

    dep.__name__ = "require_" + "_or_".join(roles)
    return dep


require_manager = _roles("manager")
require_technician = _roles("technician")
require_manager_or_technician = _roles("manager", "technician")
require_user = _roles("manager", "technician", "artisan")


def require_admin(request: Request, db: Db, settings: Settings,
                  _token: Annotated[str | None, Depends(oauth2_scheme)] = None):
    """A manager or the legacy admin token (kept under its old name)."""
    return require_manager(request, db, settings)


def require_gateway(db: Db, x_api_key: Annotated[str | None, Header()] = None) -> Gateway:
    if not x_api_key:
        raise unauthorized()
    gw = db.scalar(select(Gateway).where(Gateway.api_key_hash == hash_api_key(x_api_key.strip())))
    if gw is None:
        raise unauthorized()
    return gw


Authorized = Depends(authorize_request)
Admin = Depends(require_admin)
Manager = Depends(require_manager)
Technician = Depends(require_technician)
ManagerOrTechnician = Depends(require_manager_or_technician)
AnyUser = Depends(require_user)
CurrentGateway = Annotated[Gateway, Depends(require_gateway)]


def _current_user(request: Request, db: Db, settings: Settings,
                  _token: Annotated[str | None, Depends(oauth2_scheme)] = None):
    return require_user(request, db, settings)


CurrentUser = Annotated[Principal, Depends(_current_user)]


def check_artisan_access(request: Request, db: DbSession, who: Principal, artisan_id: int) -> None:
    from ..security.access import require_artisan_access

    require_artisan_access(request, db, who, artisan_id)


def _own_artisan(request: Request, db: Db, who: CurrentUser, artisan_id: int) -> int:
    check_artisan_access(request, db, who, artisan_id)
    return artisan_id


OwnArtisan = Depends(_own_artisan)


def site_zone(db: DbSession, settings: ServerSettings, site: str | None):
    """The time zone for date filters: the site's, else the default site's, else default_tz."""
    code = site or settings.default_site
    s = db.get(Site, code) if code else None
    if site is not None and s is None:
        raise ApiError(404, "server.error.not_found_id", what="site", id=site)
    return zone(s.tz if s else None, settings.default_tz)

