"""Web page fixtures: the app served by uvicorn in a background thread on a free port (a fresh
migrated SQLite database per test, seeded through the API), a headless Chromium (Debian's
/usr/bin/chromium driven by Playwright) and pages logged in through the login page."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest
from argon2 import PasswordHasher

from server.security import passwords
from server.settings import ServerSettings
from tests.conftest import need_service
from tests.web.support import (ADMIN_TOKEN, CHROMIUM, CHROMIUM_ARGS, PAGE_TIMEOUT_MS, Events, LiveServer, Web,
                               login, register)


@pytest.fixture(autouse=True)
def cheap_hashes():
    """argon2id with minimal cost: the tests check the pages, not the work factor."""
    previous = passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    passwords.use_hasher(previous)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        need_service("Debian's chromium is not installed (/usr/bin/chromium; apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def web(tmp_path: Path, migrated_sqlite) -> Iterator[Web]:
    url = f"sqlite:///{tmp_path / 'web.db'}"
    migrated_sqlite.fill(tmp_path / "web.db")  # the same database as upgrade(url), copied
    settings = ServerSettings(database_url=url, demo_mode=False, secret_key="web-test-secret-" + "x" * 32,
                              admin_token=ADMIN_TOKEN, default_site="DKR", background_jobs=False, _env_file=None)
    server = LiveServer(settings).start()
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
    try:
        w = Web(server, api, "", Events("DKR", "gw-dkr"))
        register(w)
        w.gateway_key = w.ok(api.post("/api/v1/gateways", json={"id": "gw-dkr", "site": "DKR"}))["api_key"]
        yield w
    finally:
        api.close()
        server.stop()


@pytest.fixture
def page_for(browser, web: Web):
    """``page_for("gerant")``: a fresh browser context logged in through the login page."""
    contexts = []

    def make(username: str | None, lang: str | None = None):
        ctx = browser.new_context(viewport={"width": 1100, "height": 900}, locale="fr-FR")
        ctx.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(ctx)
        page = ctx.new_page()
        if username is not None:
            login(page, web.url, username, lang=lang)
        return page

    yield make
    for ctx in contexts:
        ctx.close()
