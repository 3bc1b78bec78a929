"""Enforce the policy table (:mod:`.policy`) on a request: find the route's rule, identify the
caller, check the role and, for artisans, that the record is their own.

Refusals: no or bad credentials 401; a role the rule does not list, or another artisan's
record, 403 (written to the audit log as ``access.denied``). A route without a rule is refused
(403) and logged: the permission-matrix test makes sure that never ships."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from ..errors import ApiError, unauthorized
from ..settings import ServerSettings
from . import auth
from .audit import audit
from .policy import OwnInvoice, OwnPath, OwnQuery, Rule, rule_for
from .principal import ARTISAN, Principal

log = logging.getLogger("crp.security")


def forbidden(key: str = "error.forbidden", **params: Any) -> ApiError:
    return ApiError(403, key, **params)


def route_path(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or request.url.path


def _deny(db: DbSession, request: Request, who: Principal, path: str, why: str, key: str = "error.forbidden",
          **params: Any) -> ApiError:
    """Record the refusal (the caller is known: the log cannot be flooded anonymously)."""
    db.rollback()
    audit(db, who, "access.denied", "route", f"{request.method} {path}",
          {"reason": why, "url": str(request.url.path)[:200], "params": dict(request.path_params)})
    db.commit()
    log.warning("refused %s %s for %s (%s): %s", request.method, request.url.path, who.actor, who.role, why)
    return forbidden(key, **params)


def _query_values(request: Request, name: str) -> list[str]:
    qs = request.scope.get("query_string", b"").decode("latin-1")
    return [v for k, v in parse_qsl(qs, keep_blank_values=True) if k == name]


def _set_query(request: Request, name: str, value: str) -> None:
    """Add ``name=value`` to the query (the artisan's own filter when they gave none)."""
    qs = request.scope.get("query_string", b"").decode("latin-1")
    pairs = [(k, v) for k, v in parse_qsl(qs, keep_blank_values=True) if k != name] + [(name, value)]
    request.scope["query_string"] = urlencode(pairs).encode("latin-1")
    request.__dict__.pop("_query_params", None)  # Starlette caches the parsed query


def invoice_artisan(db: DbSession, number: str) -> int | None:
    """The artisan an invoice or credit note is billed to (None: unknown, or a cooperative)."""
    try:
        from ..billing.models import CreditNote, Invoice
    except ImportError:  # billing not installed
        return None
    inv = db.scalar(select(Invoice).where(Invoice.number == number))
    if inv is None:
        cn = db.scalar(select(CreditNote).where(CreditNote.number == number))
        inv = db.get(Invoice, cn.invoice_id) if cn is not None else None
    return inv.artisan_id if inv is not None else None


def check_owner(db: DbSession, request: Request, who: Principal, rule: Rule, path: str) -> None:
    own = who.artisan_id
    owner = rule.owner
    if owner is None:
        return
    if own is None:
        raise _deny(db, request, who, path, "artisan user without an artisan", "security.error.not_own")
    if isinstance(owner, OwnQuery):
        values = _query_values(request, owner.param)
        if not values:
            _set_query(request, owner.param, str(own))
        elif any(v.strip() != str(own) for v in values):
            raise _deny(db, request, who, path, f"{owner.param}={values[-1][:20]!r} is not theirs",
                        "security.error.not_own")
    elif isinstance(owner, OwnPath):
        if str(request.path_params.get(owner.param, "")).strip() != str(own):
            raise _deny(db, request, who, path, f"{owner.param} is not theirs", "security.error.not_own")
    elif isinstance(owner, OwnInvoice):
        number = str(request.path_params.get(owner.param, ""))[:40]
        if invoice_artisan(db, number) != own:
            raise _deny(db, request, who, path, f"invoice {number!r} is not theirs", "security.error.not_own")


def authorize(request: Request, db: DbSession, settings: ServerSettings) -> Principal | None:
    """Apply the route's rule; returns the caller (None on an open route without credentials)."""
    path = route_path(request)
    rule = rule_for(request.method, path)
    if rule is None:
        log.error("no access rule for %s %s: refused (add it to server/security/policy.py)", request.method, path)
        raise forbidden("security.error.no_rule", method=request.method, path=path)
    if rule.open:
        return None
    who = auth.resolve(db, settings, request.headers.get("authorization"), request.headers.get("x-api-key"))
    if who is None:
        log.info("no credentials for %s %s", request.method, request.url.path)
        raise unauthorized()
    request.state.principal = who
    if who.role not in rule.roles:
        raise _deny(db, request, who, path, f"role {who.role} not allowed", "security.error.role",
                    role=who.role)
    if who.role == ARTISAN:
        check_owner(db, request, who, rule, path)
    return who


def require_roles(request: Request, db: DbSession, settings: ServerSettings, roles: tuple[str, ...]) -> Principal:
    """A fixed role check (the role dependencies of server.api.deps), policy-independent."""
    who = auth.resolve(db, settings, request.headers.get("authorization"), request.headers.get("x-api-key"))
    if who is None:
        raise unauthorized()
    request.state.principal = who
    if who.role not in roles:
        raise _deny(db, request, who, route_path(request), f"role {who.role} not in {roles}", "security.error.role",
                    role=who.role)
    return who


def require_artisan_access(request: Request, db: DbSession, who: Principal, artisan_id: int) -> None:
    """Artisans may only touch their own records; other roles pass."""
    if who.role == ARTISAN and who.artisan_id != artisan_id:
        raise _deny(db, request, who, route_path(request), "another artisan's record", "security.error.not_own")

