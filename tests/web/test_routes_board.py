"""The workshop board in headless Chromium: open on the LAN (no login), one tile per machine,
and, with the real parts (Mosquitto, gateway and server processes, a simulated node), a
machine going from available to in use when a badge is tapped, without reloading the page."""

from __future__ import annotations

import pytest

from crp_cli.broker import find_mosquitto
from crp_cli.stack import Stack
from crp_common.clock import SystemClock
from firmware_sim.node import MachineNode
from firmware_sim.workshop import load_workshop
from tests.conftest import need_service
from tests.web.support import MARCH_9H, shot

pytestmark = pytest.mark.browser

STACK_WAIT_MS = 45_000  # the gateway, its snapshot and the node's first heartbeat
MAMADOU = "A84BBA07"  # qualified on band saws (firmware_sim/workshops/demo.json)


def test_board_shows_every_state_without_a_login(web, page_for):
    ev = web.events
    web.ingest(ev.fault("lathe-1", "node-lt1", "thermal", MARCH_9H))
    web.ok(web.api.post("/api/v1/machines/lathe-2/lock", json={"reason": "courroie"}))
    open_session = ev.session("bandsaw-1", "node-bs1", "04A1B2C3", web.artisans["Awa Diop"], MARCH_9H, 10)[:4]
    web.ingest(open_session)
    page = page_for(None)
    r = page.goto(f"{web.url}/board")
    assert r.status == 200
    states = {t.get_attribute("data-machine"): t.get_attribute("data-state") for t in page.locator(".tile").all()}
    assert states == {"bandsaw-1": "in_use", "lathe-1": "fault", "lathe-2": "maintenance"}
    saw = page.locator('[data-machine="bandsaw-1"]').inner_text()
    assert "Awa D." in saw and "depuis 09:00" in saw and "OCCUPÉE" in saw.upper()
    assert "PANNE" in page.locator('[data-machine="lathe-1"]').inner_text().upper()
    assert page.locator('[data-machine="lathe-1"] svg').count() == 1  # an icon as well as a word
    shot(page, "board")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    shot(page, "board-phone")


def test_board_follows_a_badge_tap_through_the_real_stack(browser, tmp_path):
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")
    workshop = load_workshop()
    stack = Stack(tmp_path / "stack", f"sqlite:///{tmp_path / 'crp.db'}", site="DKR")
    node = None
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        stack.start_broker()
        stack.start_server()
        stack.seed(workshop)
        stack.start_gateway()
        saw = next(m for m in workshop.machines if m.id == "bandsaw-1")
        user, password = stack.mqtt_creds("sim")
        node = MachineNode("DKR", saw.id, saw.node, stack.broker.host, stack.broker.port, user, password,
                           SystemClock(), tmp_path / "nodes")
        page = ctx.new_page()
        page.goto(f"{stack.api_url}/board?lang=en")
        tile = '[data-machine="bandsaw-1"]'
        assert page.get_attribute(tile, "data-state") == "offline"  # never heard of yet
        node.power_on()
        page.wait_for_selector(f'{tile}[data-state="available"]', timeout=STACK_WAIT_MS)
        shot(page, "board-stack-available")
        req, decision = node.tap_and_wait(MAMADOU, timeout=STACK_WAIT_MS / 1000)
        assert decision is not None and decision.result == "grant", decision
        page.wait_for_selector(f'{tile}[data-state="in_use"]', timeout=STACK_WAIT_MS)
        text = page.inner_text(tile)
        assert "Mamadou D." in text and "IN USE" in text.upper()
        shot(page, "board-stack-in-use")
    finally:
        ctx.close()
        if node is not None and node.powered:
            node.shutdown()
        stack.stop()


@pytest.mark.parametrize("site", ["dkr", "TOO-LONG-CODE"])
def test_board_refuses_a_bad_site_code(web, page_for, site):
    page = page_for(None)
    assert page.goto(f"{web.url}/board?site={site}").status == 422
    assert page.goto(f"{web.url}/board/tiles?site={site}").status == 422
