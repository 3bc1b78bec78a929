"""The artisan's page in headless Chromium: my sessions with billed minutes and amounts, my
balance, my invoices and their PDF; never another artisan's."""

from __future__ import annotations

import pytest

from tests.web.support import MARCH_9H, MIN, shot

pytestmark = pytest.mark.browser


def test_artisan_sees_balance_sessions_and_invoices_and_only_their_own(web, page_for):
    awa, moussa = web.artisans["Awa Diop"], web.artisans["Moussa Ndiaye"]
    ev = web.events
    web.ingest(ev.session("bandsaw-1", "node-bs1", "04A1B2C3", awa, MARCH_9H, 50)
               + ev.session("bandsaw-1", "node-bs1", "04D4E5F6", moussa, MARCH_9H + 120 * MIN, 20))
    web.ok(web.api.post("/api/v1/rate-cards", json={
        "site": "DKR", "machine_type": "bandsaw", "price_per_hour_member": 1000, "price_per_hour_non_member": 1500,
        "increment_minutes": 15, "effective_from": "2026-01-01"}))
    docs = {d["artisan"]: d for d in web.ok(web.api.post("/api/v1/billing/run", json={"period": "2026-03"}))}
    web.ok(web.api.post("/api/v1/payments", json={"artisan": awa, "amount": 300, "currency": "XOF",
                                                   "method": "cash"}))
    # One more session in April, not billed yet (30 min at 1 000/h = 500).
    web.ingest(ev.session("bandsaw-1", "node-bs1", "04A1B2C3", awa, MARCH_9H + 31 * 24 * 60 * MIN, 30))

    page = page_for("awa")
    assert page.url.endswith("/me")
    shot(page, "artisan-me")
    # 50 min billed as 60 min (15-min steps, up) = 1 000; paid 300; 500 still to bill.
    assert page.get_attribute("#balance [data-owed]", "data-owed") == "1200"
    assert "1\u202f200 XOF" in page.inner_text("#balance")
    rows = page.locator("#sessions tbody tr")
    assert rows.count() == 2
    april, march = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert "pas encore facturée" in april and "30" in april
    assert "60" in march and "1\u202f000 XOF" in march
    assert "04D4E5F6" not in page.content() and "Moussa" not in page.content()
    mine, theirs = docs[awa]["number"], docs[moussa]["number"]
    assert mine in page.inner_text("table.invoices") and theirs not in page.content()

    pdf = page.request.get(f"{web.url}/invoices/{mine}.pdf")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert page.request.get(f"{web.url}/invoices/{theirs}.pdf").status == 403
    page.goto(f"{web.url}/invoices/{theirs}")
    assert "Accès refusé" in page.inner_text("h1")
    page.goto(f"{web.url}/invoices/{mine}")
    assert page.locator("button.danger").count() == 0  # no credit-note form for an artisan
    shot(page, "artisan-invoice")
