"""The permission matrix: every route of the app × every kind of caller, checked against the
one policy table (server/security/policy.py) by actually calling the route.

A new endpoint without a rule fails here (test_every_route_has_a_rule), and so does a rule
whose route no longer exists. Callers: manager, technician, an artisan asking for their own
records, an artisan asking for another's, a gateway key, nobody."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import iter_route_contexts

from server.security.policy import OPEN, RULES, OwnInvoice, OwnPath, OwnQuery, rule_for

CALLERS = ("manager", "technician", "artisan-own", "artisan-other", "gateway", "nobody")
REFUSED = (401, 403)
PARAM_RE = re.compile(r"{([^}:]+)(?::[^}]*)?}")
NO_SUCH = "999999"


def app_routes(app) -> list[tuple[str, str]]:
    out = set()
    for ctx in iter_route_contexts(app.routes):
        path, methods = ctx.path, ctx.methods
        if path is None or not methods:
            continue
        for m in methods:
            out.add((m, path))
    return sorted(out)


@pytest.fixture
def routes(api) -> list[tuple[str, str]]:
    return app_routes(api.app)


def test_every_route_has_a_rule(routes):
    missing = [f"{m} {p}" for m, p in routes if rule_for(m, p) is None]
    assert not missing, f"routes without an access rule in server/security/policy.py: {missing}"


def test_every_rule_names_a_route(routes):
    stale = sorted(f"{m} {p}" for m, p in set(RULES) - set(routes))
    assert not stale, f"rules for routes that do not exist: {stale}"


def test_only_health_login_and_api_description_are_open():
    open_routes = {p for (m, p), r in RULES.items() if r.open}
    assert open_routes == {"/health", "/api/v1/auth/token", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                           # web pages: the login form, and the wall board (read-only kiosk, see docs/web.md)
                           "/login", "/logout", "/board", "/board/tiles"}


def _expected(caller: str, rule) -> bool:
    """True if the caller may use the route."""
    if rule.open:
        return True
    role = {"artisan-own": "artisan", "artisan-other": "artisan", "nobody": None}.get(caller, caller)
    if role not in rule.roles:
        return False
    return not (caller == "artisan-other" and rule.owner is not None)


def _request(sec, caller: str, method: str, path: str, rule):
    mine = caller != "artisan-other"
    artisan = sec.own if mine else sec.other

    def value(name: str) -> str:
        if name == "artisan_id":
            return str(artisan)
        if name == "number":
            return sec.invoices[artisan]
        return NO_SUCH

    url = PARAM_RE.sub(lambda m: value(m.group(1)), path)
    params = {}
    if caller.startswith("artisan") and isinstance(rule.owner, OwnQuery):
        params[rule.owner.param] = artisan
    headers = {
        "manager": sec.headers["mgr"],
        "technician": sec.headers["tech"],
        "artisan-own": sec.headers["awa"],
        "artisan-other": sec.headers["awa"],
        "gateway": sec.headers["gateway"],
        "nobody": {},
    }[caller]
    kw = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return sec.client.request(method, url, params=params, headers=headers, **kw)


def test_matrix(sec, routes):
    """Each route × caller: refused (401 without credentials, 403 with) exactly when the table
    says so."""
    wrong = []
    for method, path in routes:
        rule = rule_for(method, path)
        assert rule is not None, f"{method} {path} has no rule"
        for caller in CALLERS:
            r = _request(sec, caller, method, path, rule)
            allowed = _expected(caller, rule)
            if allowed and r.status_code in REFUSED:
                wrong.append(f"{caller} {method} {path}: {r.status_code} (should be allowed) {r.text[:120]}")
            elif not allowed:
                # Nobody: 401. A caller with the wrong kind of credential for a gateway route
                # (a person's token where an X-API-Key is needed): 401 too. Otherwise 403.
                want = {401} if caller == "nobody" else {401, 403} if rule.roles == {"gateway"} else {403}
                if r.status_code not in want:
                    wrong.append(f"{caller} {method} {path}: {r.status_code}, expected {want} {r.text[:120]}")
            if r.status_code >= 500:
                wrong.append(f"{caller} {method} {path}: {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_owner_rules_only_on_artisan_routes():
    for (m, p), r in RULES.items():
        if r.owner is not None:
            assert "artisan" in r.roles, f"{m} {p}"
            if isinstance(r.owner, OwnPath):
                assert "{" + r.owner.param + "}" in p
            if isinstance(r.owner, OwnInvoice):
                assert "{" + r.owner.param + "}" in p
        assert OPEN not in r.roles or len(r.roles) == 1
