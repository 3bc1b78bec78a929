"""The access policy: ONE table, (method, route path) -> the roles allowed.

Every route of the app must have a rule (tests/server/security/test_policy_matrix.py builds the
matrix from the app's routes, so a new endpoint without a rule fails the suite; at run time a
route without a rule is refused). ``owner`` restricts artisans to their own records:

- ``OwnQuery("artisan")``: the ``?artisan=`` filter must be their id (added when missing);
- ``OwnPath("artisan_id")``: the ``{artisan_id}`` in the URL must be theirs;
- ``OwnInvoice("number")``: the invoice (or credit note) must be billed to them.

Managers and the legacy admin token may use every human endpoint; gateways (X-API-Key) only
ingestion and the snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from .principal import ARTISAN, GATEWAY, MANAGER, TECHNICIAN

M, T, A, G = MANAGER, TECHNICIAN, ARTISAN, GATEWAY
OPEN = "open"


@dataclass(frozen=True)
class OwnQuery:
    param: str


@dataclass(frozen=True)
class OwnPath:
    param: str


@dataclass(frozen=True)
class OwnInvoice:
    param: str


Owner = OwnQuery | OwnPath | OwnInvoice


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    owner: Owner | None = None

    @property
    def open(self) -> bool:
        return OPEN in self.roles


def rule(*roles: str, owner: Owner | None = None) -> Rule:
    return Rule(frozenset(roles), owner)


V1 = "/api/v1"
MT = (M, T)
OWN_Q = OwnQuery("artisan")
OWN_P = OwnPath("artisan_id")
OWN_INV = OwnInvoice("number")

RULES: dict[tuple[str, str], Rule] = {
    # ---- open: liveness, login, and the framework's API description (no data)
    ("GET", "/health"): rule(OPEN),
    ("POST", f"{V1}/auth/token"): rule(OPEN),
    ("GET", "/openapi.json"): rule(OPEN),
    ("HEAD", "/openapi.json"): rule(OPEN),
    ("GET", "/docs"): rule(OPEN),
    ("HEAD", "/docs"): rule(OPEN),
    ("GET", "/docs/oauth2-redirect"): rule(OPEN),
    ("HEAD", "/docs/oauth2-redirect"): rule(OPEN),
    # ---- gateways
    ("POST", f"{V1}/ingest"): rule(G),
    ("GET", f"{V1}/gateway/snapshot"): rule(G),
    # ---- security
    ("GET", f"{V1}/auth/me"): rule(M, T, A),
    ("GET", f"{V1}/users"): rule(M),
    ("POST", f"{V1}/users"): rule(M),
    ("GET", f"{V1}/users/{{user_id}}"): rule(M),
    ("POST", f"{V1}/users/{{user_id}}/password"): rule(M),
    ("POST", f"{V1}/users/{{user_id}}/deactivate"): rule(M),
    ("POST", f"{V1}/users/{{user_id}}/activate"): rule(M),
    ("GET", f"{V1}/audit"): rule(M),
    ("GET", f"{V1}/security/alerts"): rule(M),
    ("POST", f"{V1}/security/alerts/{{alert_id}}/ack"): rule(M),
    # ---- registry: technicians read, managers write, artisans see their own record
    ("POST", f"{V1}/sites"): rule(M),
    ("GET", f"{V1}/sites"): rule(*MT),
    ("POST", f"{V1}/machine-types"): rule(M),
    ("GET", f"{V1}/machine-types"): rule(*MT),
    ("POST", f"{V1}/machines"): rule(M),
    ("GET", f"{V1}/machines"): rule(*MT),
    ("GET", f"{V1}/machines/{{machine_id}}"): rule(*MT),
    ("PATCH", f"{V1}/machines/{{machine_id}}"): rule(M),
    ("POST", f"{V1}/artisans"): rule(M),
    ("GET", f"{V1}/artisans"): rule(*MT),
    ("GET", f"{V1}/artisans/{{artisan_id}}"): rule(M, T, A, owner=OWN_P),
    ("PATCH", f"{V1}/artisans/{{artisan_id}}"): rule(M),
    ("POST", f"{V1}/badges"): rule(M),
    ("GET", f"{V1}/badges"): rule(M, T, A, owner=OWN_Q),
    ("PATCH", f"{V1}/badges/{{uid}}"): rule(M),
    ("POST", f"{V1}/qualifications"): rule(M),
    ("POST", f"{V1}/gateways"): rule(M),
    ("GET", f"{V1}/gateways"): rule(*MT),
    # ---- reports: technicians read, artisans their own sessions and usage
    ("GET", f"{V1}/sessions"): rule(M, T, A, owner=OWN_Q),
    ("GET", f"{V1}/usage/artisans"): rule(*MT),
    ("GET", f"{V1}/usage/machines"): rule(M, T, A, owner=OWN_Q),
    ("GET", f"{V1}/denials"): rule(*MT),
    ("GET", f"{V1}/summary"): rule(*MT),
    ("GET", f"{V1}/dead-letters"): rule(*MT),
    ("GET", f"{V1}/machines/{{machine_id}}/states"): rule(*MT),
    # ---- billing: managers; artisans read their own invoices, payments, balance, statement
    ("POST", f"{V1}/rate-cards"): rule(M),
    ("GET", f"{V1}/rate-cards"): rule(M),
    ("POST", f"{V1}/rate-cards/{{card_id}}/close"): rule(M),
    ("POST", f"{V1}/billing/run"): rule(M),
    ("GET", f"{V1}/billing/export.csv"): rule(M),
    ("GET", f"{V1}/invoices"): rule(M, A, owner=OWN_Q),
    ("GET", f"{V1}/invoices/{{number}}.pdf"): rule(M, A, owner=OWN_INV),
    ("GET", f"{V1}/invoices/{{number}}"): rule(M, A, owner=OWN_INV),
    ("PATCH", f"{V1}/invoices/{{number}}"): rule(M),
    ("PUT", f"{V1}/invoices/{{number}}"): rule(M),
    ("DELETE", f"{V1}/invoices/{{number}}"): rule(M),
    ("POST", f"{V1}/invoices/{{number}}/credit-note"): rule(M),
    ("POST", f"{V1}/payments"): rule(M),
    ("GET", f"{V1}/payments"): rule(M, A, owner=OWN_Q),
    ("GET", f"{V1}/artisans/{{artisan_id}}/balance"): rule(M, A, owner=OWN_P),
    ("GET", f"{V1}/artisans/{{artisan_id}}/statement"): rule(M, A, owner=OWN_P),
    ("PUT", f"{V1}/artisans/{{artisan_id}}/credit-account"): rule(M),
    # ---- maintenance: technicians do the work; managers also manage staff and notifications
    ("POST", f"{V1}/maintenance/plans"): rule(*MT),
    ("GET", f"{V1}/maintenance/plans"): rule(*MT),
    ("GET", f"{V1}/maintenance/plans/{{plan_id}}"): rule(*MT),
    ("PATCH", f"{V1}/maintenance/plans/{{plan_id}}"): rule(*MT),
    ("DELETE", f"{V1}/maintenance/plans/{{plan_id}}"): rule(M),
    ("PUT", f"{V1}/maintenance/plans/{{plan_id}}/counters/{{machine_id}}"): rule(*MT),
    ("GET", f"{V1}/alerts"): rule(*MT),
    ("GET", f"{V1}/alerts/{{alert_id}}"): rule(*MT),
    ("POST", f"{V1}/alerts/{{alert_id}}/ack"): rule(*MT),
    ("POST", f"{V1}/alerts/{{alert_id}}/resolve"): rule(*MT),
    ("POST", f"{V1}/technicians"): rule(M),
    ("GET", f"{V1}/technicians"): rule(*MT),
    ("GET", f"{V1}/technicians/{{tech_id}}"): rule(*MT),
    ("PATCH", f"{V1}/technicians/{{tech_id}}"): rule(M),
    ("DELETE", f"{V1}/technicians/{{tech_id}}"): rule(M),
    ("POST", f"{V1}/notification-targets"): rule(M),
    ("GET", f"{V1}/notification-targets"): rule(*MT),
    ("GET", f"{V1}/notification-targets/{{target_id}}"): rule(*MT),
    ("PATCH", f"{V1}/notification-targets/{{target_id}}"): rule(M),
    ("DELETE", f"{V1}/notification-targets/{{target_id}}"): rule(M),
    ("GET", f"{V1}/notifications"): rule(*MT),
    ("POST", f"{V1}/work-orders"): rule(*MT),
    ("GET", f"{V1}/work-orders"): rule(*MT),
    ("GET", f"{V1}/work-orders/{{wo_id}}"): rule(*MT),
    ("PATCH", f"{V1}/work-orders/{{wo_id}}"): rule(*MT),
    ("POST", f"{V1}/work-orders/{{wo_id}}/close"): rule(*MT),
    ("POST", f"{V1}/machines/{{machine_id}}/lock"): rule(*MT),
    ("POST", f"{V1}/machines/{{machine_id}}/unlock"): rule(*MT),
    ("GET", f"{V1}/machines/{{machine_id}}/maintenance"): rule(*MT),
    ("GET", f"{V1}/maintenance/summary"): rule(*MT),
    ("POST", f"{V1}/maintenance/evaluate"): rule(*MT),
    # ---- dashboards / availability
    ("GET", f"{V1}/availability"): rule(*MT),
}


# ---- web pages (server/web): each page takes the rule of the API route whose data or action it
# shows (the same Rule object, so the two can never drift apart). The login page, the log-out
# and the workshop board (a kiosk on the LAN, see docs/web.md) are open.
_API = dict(RULES)
RULES.update({
    ("GET", "/login"): rule(OPEN),
    ("POST", "/login"): rule(OPEN),
    ("POST", "/logout"): rule(OPEN),
    ("GET", "/board"): rule(OPEN),
    ("GET", "/board/tiles"): rule(OPEN),
    ("GET", "/"): _API[("GET", f"{V1}/auth/me")],
    # manager
    ("GET", "/manager/artisans"): _API[("POST", f"{V1}/artisans")],
    ("POST", "/manager/artisans"): _API[("POST", f"{V1}/artisans")],
    ("GET", "/manager/artisans/{artisan_id}"): _API[("PATCH", f"{V1}/artisans/{{artisan_id}}")],
    ("POST", "/manager/artisans/{artisan_id}/badges"): _API[("POST", f"{V1}/badges")],
    ("POST", "/manager/artisans/{artisan_id}/badges/{uid}"): _API[("PATCH", f"{V1}/badges/{{uid}}")],
    ("POST", "/manager/artisans/{artisan_id}/qualifications"): _API[("POST", f"{V1}/qualifications")],
    ("GET", "/manager/machines"): _API[("POST", f"{V1}/rate-cards")],
    ("POST", "/manager/rates"): _API[("POST", f"{V1}/rate-cards")],
    ("GET", "/manager/billing"): _API[("POST", f"{V1}/billing/run")],
    ("POST", "/manager/billing"): _API[("POST", f"{V1}/billing/run")],
    ("GET", "/manager/payments"): _API[("POST", f"{V1}/payments")],
    ("POST", "/manager/payments"): _API[("POST", f"{V1}/payments")],
    ("GET", "/manager/balances"): _API[("PUT", f"{V1}/artisans/{{artisan_id}}/credit-account")],
    ("GET", "/manager/audit"): _API[("GET", f"{V1}/audit")],
    # invoices: managers, and artisans their own
    ("GET", "/invoices/{number}"): _API[("GET", f"{V1}/invoices/{{number}}")],
    ("GET", "/invoices/{number}.pdf"): _API[("GET", f"{V1}/invoices/{{number}}.pdf")],
    ("POST", "/invoices/{number}/credit-note"): _API[("POST", f"{V1}/invoices/{{number}}/credit-note")],
    # technician (and manager)
    ("GET", "/tech/alerts"): _API[("GET", f"{V1}/alerts")],
    ("POST", "/tech/alerts/{alert_id}/ack"): _API[("POST", f"{V1}/alerts/{{alert_id}}/ack")],
    ("GET", "/tech/work-orders"): _API[("GET", f"{V1}/work-orders")],
    ("POST", "/tech/work-orders"): _API[("POST", f"{V1}/work-orders")],
    ("POST", "/tech/work-orders/{wo_id}/work"): _API[("PATCH", f"{V1}/work-orders/{{wo_id}}")],
    ("POST", "/tech/work-orders/{wo_id}/close"): _API[("POST", f"{V1}/work-orders/{{wo_id}}/close")],
    ("GET", "/tech/machines"): _API[("POST", f"{V1}/machines/{{machine_id}}/lock")],
    ("POST", "/tech/machines/{machine_id}/lock"): _API[("POST", f"{V1}/machines/{{machine_id}}/lock")],
    ("POST", "/tech/machines/{machine_id}/unlock"): _API[("POST", f"{V1}/machines/{{machine_id}}/unlock")],
    ("GET", "/tech/due"): _API[("GET", f"{V1}/maintenance/plans")],
    # artisan: their own page (their id comes from their token)
    ("GET", "/me"): rule(A),
})
del _API


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a route (its path template, e.g. ``/api/v1/artisans/{artisan_id}``)."""
    return RULES.get((method.upper(), path))
