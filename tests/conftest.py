"""Shared fixtures: real services, started privately per test session.

In CI (CI=true) a missing service fails the test; locally it skips with the reason."""

from __future__ import annotations

import os
import secrets
import urllib.parse
import uuid
from pathlib import Path

import pytest

from crp_cli.broker import Broker, BrokerUser, find_mosquitto

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SITE = "DKR"


def need_service(reason: str) -> None:
    """Fail in CI, skip (saying why) elsewhere."""
    if IN_CI:
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(reason)


# --------------------------------------------------------------------------- MQTT


class BrokerInfo:
    def __init__(self, broker: Broker, users: dict[str, BrokerUser]):
        self.broker = broker
        self.users = users

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def port(self) -> int:
        return self.broker.port

    def creds(self, name: str) -> tuple[str, str]:
        u = self.users[name]
        return u.username, u.password


def _test_users() -> dict[str, BrokerUser]:
    def pw() -> str:
        return secrets.token_urlsafe(12)

    return {
        "gateway": BrokerUser("gw-test", pw(), [f"topic readwrite crp/v1/{SITE}/#"]),
        # The simulator plays every node of the site in tests; per-node ACLs are tested apart.
        "sim": BrokerUser("sim-test", pw(), [f"topic readwrite crp/v1/{SITE}/#"]),
        "observer": BrokerUser("observer", pw(), ["topic read crp/v1/#"]),
    }


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory) -> BrokerInfo:
    """A private Mosquitto with the project's config (passwords, ACLs) on a free port."""
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")
    users = _test_users()
    broker = Broker(tmp_path_factory.mktemp("mosquitto"), users=list(users.values())).start()
    yield BrokerInfo(broker, users)
    broker.stop()


# --------------------------------------------------------------------------- databases

TEST_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")


def _pg_schema_url(base: str, schema: str) -> str:
    parts = urllib.parse.urlsplit(base)
    q = urllib.parse.parse_qsl(parts.query)
    q.append(("options", f"-csearch_path={schema}"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path) -> str:
    """An empty database: SQLite always, PostgreSQL too when TEST_POSTGRES_URL is set (each
    test gets its own schema, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crp.db'}"
        return
    if not TEST_POSTGRES_URL:
        need_service("TEST_POSTGRES_URL is not set: the PostgreSQL variant needs a server")
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_POSTGRES_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(TEST_POSTGRES_URL, schema)
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
