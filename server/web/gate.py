"""Who is looking at a page, and may they: the SAME code and policy table as the API.

A page request carries the JWT in an HttpOnly cookie (set by the login page) instead of an
``Authorization`` header. :func:`page_gate` copies the cookie into the request as a bearer
header (only when the request has none) and calls :func:`server.security.access.authorize`,
which applies the route's rule from server/security/policy.py exactly as for the API (the page
rules there reuse the API's rule objects). Refusals come back as a :class:`Gate` holding the
ApiError, so the page can answer with a login page (401) or a refusal page (403) instead of
JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Path, Request

from ..errors import ApiError
from ..security import access, policy
from ..security.principal import ARTISAN, MANAGER, TECHNICIAN, Principal

SESSION_COOKIE = "crp_session"
MAX_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]  # a row id in a page's path


@dataclass(frozen=True)
class Gate:
    who: Principal | None = None
    refusal: ApiError | None = None

    @property
    def refused(self) -> bool:
        return self.refusal is not None


def cookie_token(request: Request) -> str | None:
    token = (request.cookies.get(SESSION_COOKIE) or "").strip()
    return token or None


def _bearer_from_cookie(request: Request) -> None:
    """Give the request the cookie's token as ``Authorization: Bearer`` (if it has no header)."""
    if "authorization" in request.headers:
        return
    token = cookie_token(request)
    if token is None:
        return
    try:
        value = f"Bearer {token}".encode("latin-1")
    except UnicodeEncodeError:
        value = b"Bearer invalid"
    request.scope["headers"] = [*request.scope.get("headers", []), (b"authorization", value)]
    request.__dict__.pop("_headers", None)  # Starlette caches the parsed headers


def page_gate(request: Request, db, settings) -> Gate:  # noqa: ANN001
    """Apply the page route's policy rule to the cookie's (or header's) caller."""
    _bearer_from_cookie(request)
    try:
        return Gate(who=access.authorize(request, db, settings))
    except ApiError as e:
        return Gate(refusal=e)


def can(who: Principal | None, method: str, path: str) -> bool:
    """May ``who`` use the route ``method path`` (a path template) by the policy table? Used to
    show only the links and forms a role may use; the route itself checks again."""
    rule = policy.rule_for(method, path)
    if rule is None:
        return False
    if rule.open:
        return True
    return who is not None and who.role in rule.roles


HOME = {MANAGER: "/manager/artisans", TECHNICIAN: "/tech/alerts", ARTISAN: "/me"}


def home_for(who: Principal | None) -> str:
    return HOME.get(who.role if who else "", "/login")
