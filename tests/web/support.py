"""Helpers of the web page tests: the live server (uvicorn in a thread), gateway events,
the seeded workshop, logging in through the login page, screenshots."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from crp_cli.broker import free_port
from server.app import create_app
from server.settings import ServerSettings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
ADMIN_TOKEN = "web-test-admin-token"
PASSWORD = "atelier-2026-mot-de-passe"
SERVER_START_TIMEOUT_S = 20.0
PAGE_TIMEOUT_MS = 15_000
MARCH_9H = int(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)  # Dakar is UTC+0
MIN = 60_000


class LiveServer:
    """create_app served by uvicorn in a thread (stopped with should_exit)."""

    def __init__(self, settings: ServerSettings):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-web", daemon=True)

    def start(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(SERVER_START_TIMEOUT_S)


class Events:
    """Gateway events as the gateway forwards them (source, boot, seq each fresh)."""

    def __init__(self, site: str, gateway: str):
        self.site, self.gateway = site, gateway
        self._seq: dict[str, itertools.count] = {}

    def _e(self, source: str, kind: str, machine: str | None, t: int, body: dict[str, Any]) -> dict[str, Any]:
        seq = next(self._seq.setdefault(source, itertools.count(1)))
        return {"source": source, "boot": 1, "seq": seq, "kind": kind, "site": self.site, "machine": machine,
                "t": t, "body": body}

    def session(self, machine: str, node: str, uid: str, artisan: int, start: int, minutes: int) -> list[dict]:
        """A badge tap granted at ``start`` and a tap-out ``minutes`` later."""
        b = self._e(node, "badge", machine, start, {"uid": uid})
        req = {"node": node, "boot": 1, "seq": b["seq"]}
        sid = f"{node}:1:{b['seq']}"
        end = start + minutes * MIN
        return [
            b,
            self._e(self.gateway, "decision", machine, start + 50,
                    {"uid": uid, "artisan": artisan, "result": "grant", "reason": None, "req": req}),
            self._e(self.gateway, "session_open", machine, start + 50,
                    {"session": sid, "artisan": artisan, "uid": uid, "req": req}),
            self._e(self.gateway, "state", machine, start + 50, {"state": "in_use", "cause": "session_open"}),
            self._e(self.gateway, "session_close", machine, end, {"session": sid, "reason": "tap_out"}),
            self._e(self.gateway, "state", machine, end, {"state": "available", "cause": "tap_out"}),
        ]

    def fault(self, machine: str, node: str, code: str, t: int) -> list[dict]:
        return [self._e(node, "fault", machine, t, {"code": code, "active": True})]

    def batch(self, events: list[dict]) -> dict[str, Any]:
        return {"gateway": self.gateway, "site": self.site, "sent_at": max(e["t"] for e in events), "events": events}


@dataclass
class Web:
    """The live server, an admin API client, the registered workshop and its users."""

    server: LiveServer
    api: httpx.Client
    gateway_key: str
    events: Events
    artisans: dict[str, int] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # username -> role

    @property
    def url(self) -> str:
        return self.server.url

    def ok(self, r: httpx.Response) -> Any:
        assert r.status_code in (200, 201, 204), f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def ingest(self, events: list[dict]) -> None:
        r = self.api.post("/api/v1/ingest", json=self.events.batch(events), headers={"X-API-Key": self.gateway_key})
        body = self.ok(r)
        assert not body.get("rejected"), body

    def add_user(self, username: str, role: str, artisan: int | None = None) -> None:
        body: dict[str, Any] = {"username": username, "password": PASSWORD, "role": role}
        if artisan is not None:
            body["artisan_id"] = artisan
        self.ok(self.api.post("/api/v1/users", json=body))
        self.users[username] = role


def register(web: Web) -> None:
    """Site DKR (Dakar), two machine types, three machines, two artisans with badges; a
    manager, a technician and an artisan user (Awa)."""
    ok, api = web.ok, web.api
    ok(api.post("/api/v1/sites", json={"code": "DKR", "name": "CRP Dakar", "tz": "Africa/Dakar"}))
    ok(api.post("/api/v1/machine-types", json={"code": "bandsaw", "name_fr": "Scie à ruban", "name_en": "Bandsaw"}))
    ok(api.post("/api/v1/machine-types", json={"code": "lathe", "name_fr": "Tour", "name_en": "Lathe"}))
    for mid, mtype, name, node in (("bandsaw-1", "bandsaw", "Scie à ruban 1", "node-bs1"),
                                   ("lathe-1", "lathe", "Tour 1", "node-lt1"),
                                   ("lathe-2", "lathe", "Tour 2", None)):
        ok(api.post("/api/v1/machines", json={"id": mid, "site": "DKR", "type": mtype, "name": name,
                                              "node_id": node}))
    for name, uid in (("Awa Diop", "04A1B2C3"), ("Moussa Ndiaye", "04D4E5F6")):
        a = ok(api.post("/api/v1/artisans", json={"site": "DKR", "name": name, "trade": "menuiserie"}))
        web.artisans[name] = a["id"]
        ok(api.post("/api/v1/badges", json={"uid": uid, "artisan_id": a["id"]}))
        ok(api.post("/api/v1/qualifications", json={"artisan_id": a["id"], "machine_type": "bandsaw"}))
    web.add_user("gerant", "manager")
    web.add_user("tech", "technician")
    web.add_user("awa", "artisan", web.artisans["Awa Diop"])
    web.add_user("moussa", "artisan", web.artisans["Moussa Ndiaye"])


def login(page, base: str, username: str, password: str = PASSWORD, lang: str | None = None) -> None:
    page.goto(f"{base}/login" + (f"?lang={lang}" if lang else ""))
    page.fill("#f-username", username)
    page.fill("#f-password", password)
    page.click("form.login button[type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url, page.content()[:500]


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
