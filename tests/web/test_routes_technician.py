"""The technician's main flows in headless Chromium: a fault forwarded by the gateway raises an
alert; the technician acknowledges it, opens a work order from it, records the work and
closes it (which resolves the alert and puts the machine back in service); lock-out by hand;
what is coming due."""

from __future__ import annotations

import pytest

from tests.web.support import MARCH_9H, shot

pytestmark = pytest.mark.browser


def test_technician_acknowledges_an_alert_and_closes_its_work_order(web, page_for):
    web.ingest(web.events.fault("bandsaw-1", "node-bs1", "estop", MARCH_9H))
    [alert] = web.ok(web.api.get("/api/v1/alerts"))
    assert (alert["machine"], alert["kind"], alert["state"]) == ("bandsaw-1", "fault", "open")
    assert web.ok(web.api.get("/api/v1/machines/bandsaw-1"))["locked"] is True

    page = page_for("tech")
    assert page.url.endswith("/tech/alerts")
    card = page.locator(f'[data-alert="{alert["id"]}"]')
    assert "Scie à ruban 1" in card.inner_text()
    shot(page, "tech-alerts")
    card.locator("button.ack").click()
    page.wait_for_selector(".done")
    assert web.ok(web.api.get(f"/api/v1/alerts/{alert['id']}"))["state"] == "acknowledged"
    assert web.ok(web.api.get(f"/api/v1/alerts/{alert['id']}"))["acknowledged_by"] == "tech"

    page.locator(f'[data-alert="{alert["id"]}"] button.open-wo').click()
    page.wait_for_selector(".done")
    assert page.url.split("?")[0].endswith("/tech/work-orders")
    [wo] = web.ok(web.api.get("/api/v1/work-orders"))
    assert (wo["alert"], wo["machine"], wo["state"], wo["opened_by"]) == (alert["id"], "bandsaw-1", "open", "tech")

    # Bad input: negative minutes, shown next to the field; nothing recorded.
    box = page.locator(f'[data-wo="{wo["id"]}"]')
    box.locator("textarea[name=work_done]").fill("Bouton d'arrêt d'urgence remplacé")
    box.locator("input[name=minutes_spent]").fill("-3")
    box.locator("button.record").click()
    assert page.inner_text("#e-minutes_spent") == "Valeur hors des limites permises"
    assert web.ok(web.api.get(f"/api/v1/work-orders/{wo['id']}"))["work_done"] == ""
    box = page.locator(f'[data-wo="{wo["id"]}"]')
    box.locator("input[name=minutes_spent]").fill("45")
    box.locator("button.record").click()
    page.wait_for_selector(".done")
    shot(page, "tech-work-orders")
    got = web.ok(web.api.get(f"/api/v1/work-orders/{wo['id']}"))
    assert (got["work_done"], got["minutes_spent"]) == ("Bouton d'arrêt d'urgence remplacé", 45)

    page.locator(f'[data-wo="{wo["id"]}"] button.close').click()
    page.wait_for_selector(f'[data-closed-wo="{wo["id"]}"]')
    assert web.ok(web.api.get(f"/api/v1/work-orders/{wo['id']}"))["state"] == "closed"
    assert web.ok(web.api.get(f"/api/v1/alerts/{alert['id']}"))["state"] == "resolved"
    assert web.ok(web.api.get("/api/v1/machines/bandsaw-1"))["locked"] is False
    page.goto(f"{web.url}/tech/alerts")
    assert page.locator("[data-alert]").count() == 0


def test_technician_locks_and_unlocks_a_machine_and_sees_what_is_due(web, page_for):
    web.ok(web.api.post("/api/v1/maintenance/plans", json={
        "machine": "lathe-1", "kind": "run_hours", "interval": 20, "task": "Graisser le tour", "run_h": 19}))
    page = page_for("tech", lang="en")
    page.goto(f"{web.url}/tech/machines")
    box = page.locator('[data-machine="lathe-2"]')
    box.locator("button.lock").click()
    assert page.inner_text("#e-reason") == "This field is required"
    assert web.ok(web.api.get("/api/v1/machines/lathe-2"))["locked"] is False
    page.locator('[data-machine="lathe-2"] input[name=reason]').fill("courroie cassée")
    page.locator('[data-machine="lathe-2"] button.lock').click()
    page.wait_for_selector('[data-machine="lathe-2"][data-locked="true"]')
    shot(page, "tech-machines")
    m = web.ok(web.api.get("/api/v1/machines/lathe-2"))
    assert m["locked"] is True and "courroie cassée" in m["lock_reason"]
    page.locator('[data-machine="lathe-2"] button.unlock').click()
    page.wait_for_selector('[data-machine="lathe-2"][data-locked="false"]')
    assert web.ok(web.api.get("/api/v1/machines/lathe-2"))["locked"] is False

    page.click("nav.main >> text=Coming due")
    text = page.inner_text("table")
    assert "Graisser le tour" in text and "Tour 1" in text and "soon" in text
    shot(page, "tech-due")
