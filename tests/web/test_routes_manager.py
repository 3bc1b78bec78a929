"""The manager's main flows in headless Chromium: enrol an artisan with a badge and a
qualification, set a rate, run billing, open the invoice PDF, record a mobile-money payment,
issue a credit note, read balances and the audit log."""

from __future__ import annotations

import pytest

from tests.web.support import MARCH_9H, shot

pytestmark = pytest.mark.browser


def test_manager_enrols_sets_a_rate_bills_and_opens_the_pdf(web, page_for):
    page = page_for("gerant")
    assert page.url.endswith("/manager/artisans")
    shot(page, "manager-artisans")

    # Enrol: artisan + typed badge UID + qualification, in one form.
    page.fill("#f-name", "Fatou Sow")
    page.fill("#f-phone", "+221 77 123 45 67")
    page.fill("#f-trade", "couture")
    page.fill("#f-uid", "04:11:22:33:44:55:66")
    page.select_option("#f-machine_type", "bandsaw")
    page.fill("#f-expires_on", "2027-06-30")
    page.click("#enrol button[type=submit]")
    page.wait_for_selector(".done")
    assert "Artisan inscrit" in page.inner_text(".done")
    assert "04112233445566" in page.content()
    shot(page, "manager-artisan")
    fatou = next(a for a in web.ok(web.api.get("/api/v1/artisans")) if a["name"] == "Fatou Sow")
    full = web.ok(web.api.get(f"/api/v1/artisans/{fatou['id']}"))
    assert [b["uid"] for b in full["badges"]] == ["04112233445566"]
    assert [(q["machine_type"], q["expires_on"]) for q in full["qualifications"]] == [("bandsaw", "2027-06-30")]

    # Her sessions in March (forwarded by the gateway).
    web.ingest(web.events.session("bandsaw-1", "node-bs1", "04112233445566", fatou["id"], MARCH_9H, 50))

    # Set a rate for band saws.
    page.click("nav.main >> text=Machines et tarifs")
    page.select_option("#f-machine_type", "bandsaw")
    page.fill("#f-price_per_hour_member", "1200")
    page.fill("#f-price_per_kwh", "120")
    page.fill("#f-effective_from", "2026-01-01")
    page.click("#rate button[type=submit]")
    page.wait_for_selector(".done")
    assert "1\u202f200 XOF" in page.inner_text("#rates") and "120 XOF" in page.inner_text("#rates")
    shot(page, "manager-machines")
    cards = web.ok(web.api.get("/api/v1/rate-cards"))
    assert [(c["machine_type"], c["price_per_hour_member"], c["price_per_hour_non_member"], c["price_per_kwh"])
            for c in cards] == [("bandsaw", 1200, 1200, 120)]

    # Billing run for March: one invoice (50 min rounded up to 60 at 1 200/h).
    page.click("nav.main >> text=Facturation")
    page.fill("#f-period", "2026-03")
    page.click("form.card button[type=submit]")
    page.wait_for_selector(".done")
    assert "1 facture" in page.inner_text(".done")
    invoices = web.ok(web.api.get("/api/v1/invoices"))
    assert [(i["artisan"], i["total"]) for i in invoices] == [(fatou["id"], 1200)]
    number = invoices[0]["number"]
    shot(page, "manager-billing")

    # The invoice and its PDF.
    page.click(f"text={number}")
    page.wait_for_selector("#pdf")
    shot(page, "invoice")
    pdf = page.request.get(web.url + page.locator("#pdf").get_attribute("href"))
    assert pdf.status == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.body()[:5] == b"%PDF-"

    # A mobile-money payment needs its reference: refused next to the field, then recorded.
    page.goto(f"{web.url}/manager/payments")
    page.select_option("#f-artisan", str(fatou["id"]))
    page.fill("#f-amount", "1000")
    page.select_option("#f-method", "orange_money")
    page.click("form.card button[type=submit]")
    assert "obligatoire pour le mobile money" in page.inner_text("#e-reference")
    assert web.ok(web.api.get("/api/v1/payments")) == []
    page.fill("#f-reference", "OM-2026-0001")
    page.click("form.card button[type=submit]")
    page.wait_for_selector(".done")
    shot(page, "manager-payments")
    assert [(p["amount"], p["method"], p["reference"]) for p in web.ok(web.api.get("/api/v1/payments"))] == [
        (1000, "orange_money", "OM-2026-0001")]

    # Balances: 1 200 invoiced - 1 000 paid.
    page.click("nav.main >> text=Soldes")
    assert page.inner_text(f'[data-artisan="{fatou["id"]}"]') == "200 XOF"
    shot(page, "manager-balances")

    # Credit note on the invoice (reason required).
    page.goto(f"{web.url}/invoices/{number}")
    page.click("button.danger")
    assert page.inner_text("#e-reason") == "Ce champ est obligatoire"
    page.fill("#f-reason", "Erreur de badge")
    page.click("button.danger")
    page.wait_for_selector(".done")
    assert "Avoir" in page.inner_text(".done")
    assert web.ok(web.api.get(f"/api/v1/invoices/{number}"))["status"] == "credited"

    # The audit log shows who did it.
    page.click("nav.main >> text=Journal d'audit")
    text = page.inner_text("table")
    for action in ("badge.issued", "rate_card.created", "invoice.issued", "payment.recorded", "invoice.credited"):
        assert action in text
    assert "gerant" in text
    shot(page, "manager-audit")


def test_enrol_errors_are_shown_next_to_the_field_in_french_then_english_and_nothing_is_saved(web, page_for):
    page = page_for("gerant")
    page.fill("#f-name", "Seydou Ba")
    page.fill("#f-uid", "ZZ-NOT-HEX")
    page.fill("#f-phone", "abc")
    page.click("#enrol button[type=submit]")
    assert "8, 14 ou 20 chiffres hexadécimaux" in page.inner_text("#e-uid")
    assert page.inner_text("#e-phone") == "Format non valide"
    assert page.input_value("#f-name") == "Seydou Ba"  # what was typed is kept
    shot(page, "manager-enrol-errors-fr")

    page.click("a[hreflang=en]")
    page.fill("#f-name", "Seydou Ba")
    page.fill("#f-uid", "04A1B2C3")  # Awa's badge: the artisan must not be created either
    page.click("#enrol button[type=submit]")
    assert page.inner_text("#e-uid") == "Badge 04A1B2C3 already exists"
    assert page.inner_text("#f-name >> xpath=..") is not None
    shot(page, "manager-enrol-errors-en")
    page.fill("#f-uid", "")
    page.click("#enrol button[type=submit]")
    assert page.inner_text("#e-uid") == "This field is required"
    names = [a["name"] for a in web.ok(web.api.get("/api/v1/artisans"))]
    assert "Seydou Ba" not in names
    # The rate form in English: a price that is not a number.
    page.goto(f"{web.url}/manager/machines")
    page.click("#rate button[type=submit]")
    assert page.inner_text("#e-price_per_hour_member") == "This field is required"
    page.fill("#f-price_per_hour_member", "1000")
    page.fill("#f-effective_from", "2026-01-01")
    page.click("#rate button[type=submit]")
    assert "exactly one of them" in page.inner_text("#e-machine_type")
    page.select_option("#f-machine_type", "bandsaw")
    page.fill("#f-price_per_hour_member", "-5")
    page.fill("#f-effective_from", "2026-01-01")
    page.click("#rate button[type=submit]")
    assert "price" in page.inner_text("#e-price_per_hour_member").lower()
    shot(page, "manager-rate-errors-en")
    assert web.ok(web.api.get("/api/v1/rate-cards")) == []


def test_manager_revokes_a_lost_badge_and_reactivates_it(web, page_for):
    awa, moussa = web.artisans["Awa Diop"], web.artisans["Moussa Ndiaye"]
    page = page_for("gerant")
    page.goto(f"{web.url}/manager/artisans/{awa}")
    row = '[data-badge="04A1B2C3"]'
    assert page.inner_text(f"{row} .status") == "actif"
    page.click(f"{row} button.danger")
    page.wait_for_selector(".done")
    assert page.inner_text(".done") == "Badge 04A1B2C3 révoqué : les machines le refuseront"
    assert page.inner_text(f"{row} .status") == "révoqué"
    badges = web.ok(web.api.get("/api/v1/badges", params={"artisan": awa}))
    assert [(b["uid"], b["status"]) for b in badges] == [("04A1B2C3", "revoked")]
    # The gateways' next snapshot refuses it.
    snap = web.ok(web.api.get("/api/v1/gateway/snapshot", headers={"X-API-Key": web.gateway_key}))
    assert {b["uid"]: b["status"] for b in snap["badges"]}["04A1B2C3"] == "revoked"
    shot(page, "manager-badge-revoked")
    page.click(f"{row} button[type=submit]")
    page.wait_for_selector(".done")
    assert page.inner_text(".done") == "Badge 04A1B2C3 réactivé"
    audit = [e["action"] for e in web.ok(web.api.get("/api/v1/audit", params={"entity": "badge",
                                                                              "entity_id": "04A1B2C3"}))]
    assert audit[:2] == ["badge.reactivated", "badge.revoked"]
    # Someone else's badge through this artisan's page: refused, nothing changed.
    r = page.request.post(f"{web.url}/manager/artisans/{awa}/badges/04D4E5F6", form={"status": "revoked"})
    assert r.status == 404 and "n'appartient pas à cet artisan" in r.text()
    assert web.ok(web.api.get("/api/v1/badges", params={"artisan": moussa}))[0]["status"] == "active"
    # A status that is not one: the form says so (422), nothing changed.
    r = page.request.post(f"{web.url}/manager/artisans/{awa}/badges/04A1B2C3", form={"status": "lost"})
    assert r.status == 422
    assert web.ok(web.api.get("/api/v1/badges", params={"artisan": awa}))[0]["status"] == "active"
