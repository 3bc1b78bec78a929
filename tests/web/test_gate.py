"""Pages use the API's policy: every page rule is an API rule (the same object) or one of the
few open pages, and ``can`` reads the same table."""

from __future__ import annotations

from fastapi.routing import iter_route_contexts

from server.security.policy import OPEN, RULES
from server.security.principal import ADMIN, ARTISAN, MANAGER, TECHNICIAN, Principal
from server.web.api import router
from server.web.gate import can, home_for

OPEN_PAGES = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/board"), ("GET", "/board/tiles")}
OWN_PAGE = {("GET", "/me")}


def _page_routes() -> set[tuple[str, str]]:
    return {(m, ctx.path) for ctx in iter_route_contexts(router.routes) for m in ctx.methods or ()}


def test_every_page_has_a_rule_taken_from_the_api():
    assert len(_page_routes()) > 30
    api_rules = {id(r) for (m, p), r in RULES.items() if p.startswith("/api/")}
    for key in _page_routes():
        rule = RULES[key]
        if key in OPEN_PAGES:
            assert rule.open, key
        elif key in OWN_PAGE:
            assert rule.roles == {ARTISAN}
        else:
            assert id(rule) in api_rules, f"{key} does not reuse an API rule"
    assert {k for k in _page_routes() if RULES[k].open} == OPEN_PAGES
    assert OPEN not in RULES[("GET", "/manager/artisans")].roles


def test_can_follows_the_policy_table():
    tech = Principal(kind="user", name="t", role=TECHNICIAN)
    awa = Principal(kind="user", name="awa", role=ARTISAN, artisan_id=1)
    assert can(ADMIN, "POST", "/manager/payments") and not can(tech, "POST", "/manager/payments")
    assert can(tech, "POST", "/tech/alerts/{alert_id}/ack") and not can(awa, "POST", "/tech/alerts/{alert_id}/ack")
    assert can(awa, "GET", "/invoices/{number}.pdf") and not can(awa, "POST", "/invoices/{number}/credit-note")
    assert can(None, "GET", "/board") and not can(None, "GET", "/me")
    assert not can(ADMIN, "GET", "/no/such/page")


def test_home_of_each_role():
    assert home_for(Principal(kind="user", name="m", role=MANAGER)) == "/manager/artisans"
    assert home_for(Principal(kind="user", name="t", role=TECHNICIAN)) == "/tech/alerts"
    assert home_for(Principal(kind="user", name="a", role=ARTISAN)) == "/me"
    assert home_for(None) == "/login"
