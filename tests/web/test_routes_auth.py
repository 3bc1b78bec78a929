"""Logging in and out, and each role kept to its own pages (the policy table's rules)."""

from __future__ import annotations

import httpx
import pytest

from tests.web.support import shot

pytestmark = pytest.mark.browser

MANAGER_PAGES = ["/manager/artisans", "/manager/machines", "/manager/billing", "/manager/payments",
                 "/manager/balances", "/manager/audit"]
TECH_PAGES = ["/tech/alerts", "/tech/work-orders", "/tech/machines", "/tech/due"]


@pytest.mark.parametrize("user, allowed, refused", [
    ("gerant", MANAGER_PAGES + TECH_PAGES, ["/me"]),
    ("tech", TECH_PAGES, MANAGER_PAGES + ["/me"]),
    ("awa", ["/me"], MANAGER_PAGES + TECH_PAGES),
])
def test_a_role_reaches_its_pages_and_not_the_others(web, page_for, user, allowed, refused):
    page = page_for(user)
    nav = {a.get_attribute("href") for a in page.locator("nav.main a").all()}
    assert nav == set(allowed) | {"/board"}  # the menu shows what the role may open
    for path in allowed:
        assert page.goto(web.url + path).status == 200, path
    for path in refused:
        r = page.goto(web.url + path)
        assert r.status == 403, path
        assert "Accès refusé" in page.inner_text("h1")
    shot(page, f"refused-{user}")
    # A form posted by hand is refused too, and changes nothing.
    if user != "gerant":
        r = page.request.post(f"{web.url}/manager/artisans", form={"name": "Intrus", "uid": "0A0B0C0D"})
        assert r.status == 403
        assert "Intrus" not in [a["name"] for a in web.ok(web.api.get("/api/v1/artisans"))]


def test_login_errors_then_back_to_the_page_asked_for_and_logout(web, page_for):
    page = page_for(None)
    assert page.goto(f"{web.url}/tech/alerts").status == 401  # the login page, then back here
    page.click("form.login button[type=submit]")
    assert page.inner_text("#e-username") == "Ce champ est obligatoire"
    page.fill("#f-username", "tech")
    page.fill("#f-password", "wrong password")
    page.click("form.login button[type=submit]")
    assert "incorrect" in page.inner_text(".form-error").lower()
    shot(page, "login-error")
    page.fill("#f-username", "tech")
    page.fill("#f-password", "atelier-2026-mot-de-passe")
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/tech/alerts")
    cookie = next(c for c in page.context.cookies() if c["name"] == "crp_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    page.click("header.top button.link")
    page.wait_for_url("**/login")
    assert not [c for c in page.context.cookies() if c["name"] == "crp_session"]
    assert page.goto(f"{web.url}/tech/alerts").status == 401


def test_language_switch_is_remembered(web, page_for):
    page = page_for("gerant")
    assert page.inner_text("nav.main") .startswith("Artisans")
    assert "Facturation" in page.inner_text("nav.main")
    page.click("a[hreflang=en]")
    assert "Billing" in page.inner_text("nav.main")
    page.goto(f"{web.url}/manager/payments")
    assert page.inner_text("h1") == "Payments"  # the lang cookie keeps English
    assert page.locator("html").get_attribute("lang") == "en"


def test_programs_get_the_apis_json_errors_from_pages(web):
    """curl or an API client (no text/html in Accept) gets JSON refusals, like the API."""
    r = httpx.get(f"{web.url}/manager/artisans")
    assert r.status_code == 401 and r.json()["detail"] == "Clé d'API ou jeton manquant ou invalide"
    token = web.ok(httpx.post(f"{web.url}/api/v1/auth/token",
                              data={"username": "tech", "password": "atelier-2026-mot-de-passe"}))["access_token"]
    r = httpx.get(f"{web.url}/manager/billing?lang=en", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and "technician" in r.json()["detail"]
    r = httpx.get(f"{web.url}/manager/billing", headers={"Authorization": f"Bearer {token}", "Accept": "text/html"})
    assert r.status_code == 403 and "Accès refusé" in r.text
