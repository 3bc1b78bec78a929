"""Security fixtures: the registered workshop plus users of every role, their tokens, and one
invoice each for two artisans (so ownership of invoices can be checked)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from argon2 import PasswordHasher

from server.models import Session
from server.security import passwords

PASSWORD = "correct-horse-battery"
MARCH = int(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)


@dataclass
class Sec:
    client: TestClient  # no default credentials
    admin: dict[str, str]
    site: str
    gateway_key: str
    own: int  # the artisan logged in as "awa"
    other: int
    users: dict[str, int] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    invoices: dict[int, str] = field(default_factory=dict)

    def login(self, username: str, password: str = PASSWORD, **kw):
        return self.client.post("/api/v1/auth/token", data={"username": username, "password": password}, **kw)


def _ok(r):
    assert r.status_code in (200, 201), r.text
    return r.json()


@pytest.fixture(autouse=True)
def cheap_hashes():
    """argon2id with minimal cost: the tests check the flow, not the work factor."""
    previous = passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    passwords.use_hasher(previous)


@pytest.fixture
def sec(api: TestClient, workshop, db_session) -> Sec:
    admin = {"Authorization": f"Bearer {api.headers['Authorization'].split(' ', 1)[1]}"}
    client = TestClient(api.app)
    own, other = workshop.artisans["Awa Diop"], workshop.artisans["Moussa Ndiaye"]
    s = Sec(client, admin, workshop.site, workshop.api_key, own, other)
    for username, role, artisan in (
        ("mgr", "manager", None),
        ("tech", "technician", None),
        ("awa", "artisan", own),
        ("moussa", "artisan", other),
    ):
        body = {"username": username, "password": PASSWORD, "role": role}
        if artisan is not None:
            body["artisan_id"] = artisan
        s.users[username] = _ok(client.post("/api/v1/users", json=body, headers=admin))["id"]
        token = _ok(s.login(username))["access_token"]
        s.headers[username] = {"Authorization": f"Bearer {token}"}
    s.headers["gateway"] = {"X-API-Key": workshop.api_key}
    # One closed session each in March, a rate card, a billing run: one invoice per artisan.
    for i, (artisan, uid) in enumerate(((own, workshop.badges["Awa Diop"]), (other, workshop.badges["Moussa Ndiaye"]))):
        start = MARCH + i * 3_600_000
        db_session.add(Session(id=f"sec-{i}", site="DKR", machine="bandsaw-1", artisan=artisan, badge_uid=uid,
                               start_ms=start, end_ms=start + 1_800_000, end_reason="tap_out", run_ms=1_800_000,
                               last_ms=start + 1_800_000, open=False))
    db_session.commit()
    _ok(client.post("/api/v1/rate-cards", headers=admin, json={
        "site": "DKR", "machine_type": "bandsaw", "price_per_hour_member": 1000,
        "price_per_hour_non_member": 1500, "effective_from": "2026-01-01"}))
    for doc in _ok(client.post("/api/v1/billing/run", headers=admin, json={"period": "2026-03", "site": "DKR"})):
        s.invoices[doc["artisan"]] = doc["number"]
    assert set(s.invoices) == {own, other}
    return s
