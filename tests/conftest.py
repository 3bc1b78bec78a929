"""Shared fixtures: real services, started privately per test session.

In CI (CI=true) a missing service fails the test; locally it skips with the reason."""

from __future__ import annotations

import os
import secrets
import shutil
import urllib.parse
import uuid
from pathlib import Path

import pytest

from crp_cli.broker import Broker, BrokerUser, find_mosquitto

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Apps built in tests do not run the periodic jobs on the real clock; tests drive them.
os.environ.setdefault("CRP_BACKGROUND_JOBS", "false")
SITE = "DKR"


def need_service(reason: str) -> None:
    """Fail in CI, skip (saying why) elsewhere."""
    if IN_CI:
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(reason)


# Tests that play on an accelerated real-time clock or run stacks of processes. Under
# pytest-xdist (``-n 2 --dist loadgroup``) they all run on one worker, one at a time, as they
# do without it; the other worker takes the rest.
REALTIME_PATHS = ("tests/benchmarks/", "tests/crp_cli/", "tests/deploy/", "tests/e2e/", "tests/firmware_sim/",
                  "tests/gateway/test_mqttio.py", "tests/gateway/test_plugs_live.py",
                  "tests/server/telemetry/", "tests/web/test_routes_board.py")


# The longest and busiest of them (the demo alone keeps more than one core busy) go last under
# xdist, when the other worker has finished and they have the machine to themselves.
REALTIME_LAST = ("tests/e2e/test_link_cut.py", "tests/e2e/test_faults_generated.py", "tests/crp_cli/test_demo.py")


def pytest_collection_modifyitems(config, items) -> None:
    root = Path(str(config.rootpath))
    rel = {item: Path(str(item.path)).relative_to(root).as_posix() for item in items}
    for item in items:
        if rel[item].startswith(REALTIME_PATHS):
            item.add_marker(pytest.mark.xdist_group("realtime"))
    if hasattr(config, "workerinput"):  # an xdist worker: every worker sorts the same way
        items.sort(key=lambda item: REALTIME_LAST.index(rel[item]) + 1 if rel[item] in REALTIME_LAST else 0)


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


class MigratedSqlite:
    """The migrations run once per session into a template SQLite file, copied for each test
    that needs a migrated SQLite database: a copy is the same database as a fresh ``upgrade()``
    (about 70 ms a test). PostgreSQL tests still migrate their own schema: copying a database
    (CREATE DATABASE ... TEMPLATE) writes it all to the WAL, slower here than the migrations.
    The migrations themselves are tested on empty databases (tests/server/test_db.py)."""

    def __init__(self, root: Path):
        self.root = root
        self._template: Path | None = None

    def fill(self, path: Path) -> None:
        """``path`` (not created yet) becomes a copy of the migrated template."""
        from server.db import upgrade

        if self._template is None:
            template = self.root / "template.db"
            upgrade(f"sqlite:///{template}")
            # upgrade() disposed its engine: the last connection checkpointed the WAL into the file.
            assert not Path(f"{template}-wal").exists(), "the template's WAL was not checkpointed"
            self._template = template
        assert not path.exists(), path
        shutil.copyfile(self._template, path)

    def migrate(self, url: str) -> None:
        """Bring the empty test database at ``url`` (from ``database_url``) to the migrations'
        head: a copy of the template for a SQLite file not created yet, else ``upgrade()``."""
        from server.db import upgrade

        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            self.fill(Path(url.removeprefix("sqlite:///")))
        else:
            upgrade(url)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> MigratedSqlite:
    return MigratedSqlite(tmp_path_factory.mktemp("migrated"))


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
    admin.dispose()
    try:
        yield _pg_schema_url(TEST_POSTGRES_URL, schema)
    finally:
        admin = create_engine(TEST_POSTGRES_URL)  # a fresh connection: tests may kill backends
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# ---- InfluxDB (telemetry)
# A private influxd 1.x (Debian's package) per test session, with its own generated config:
# free ports (never the system instance's 8086/8088), data in a temp dir, no reporting, no auth.
# stop() and start() again keep the same ports and data (used by the outage tests).

import shutil as _shutil  # noqa: E402
import signal as _signal  # noqa: E402
import subprocess as _subprocess  # noqa: E402
import time as _time  # noqa: E402

from crp_cli.broker import free_port as _free_port  # noqa: E402

INFLUXD_CANDIDATES = ("/usr/bin/influxd", "/usr/local/bin/influxd")
INFLUXD_START_TIMEOUT_S = 30.0
INFLUXD_STOP_TIMEOUT_S = 10.0


def find_influxd() -> str | None:
    for c in INFLUXD_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return _shutil.which("influxd")


def render_influxd_conf(root: Path, http_port: int, rpc_port: int) -> str:
    return "\n".join([
        "# Generated by tests/conftest.py: a private influxd for the test session.",
        "reporting-disabled = true",
        f'bind-address = "127.0.0.1:{rpc_port}"',
        "[meta]",
        f'  dir = "{root / "meta"}"',
        "  retention-autocreate = true",
        "  logging-enabled = false",
        "[data]",
        f'  dir = "{root / "data"}"',
        f'  wal-dir = "{root / "wal"}"',
        '  wal-fsync-delay = "0s"',
        "  query-log-enabled = false",
        "[monitor]",
        "  store-enabled = false",
        "[http]",
        "  enabled = true",
        f'  bind-address = "127.0.0.1:{http_port}"',
        "  auth-enabled = false",
        "  log-enabled = false",
        "  pprof-enabled = false",
        "[continuous_queries]",
        "  enabled = false",
        "[logging]",
        '  level = "warn"',
        "  suppress-logo = true",
        "",
    ])


class InfluxInfo:
    """A running private influxd: ``url``, ``stop()``/``start()`` (same ports and data),
    ``create_database(name)``, ``query(influxql, db=...)`` (GET /query, returns the JSON)."""

    def __init__(self, exe: str, root: Path):
        self.exe = exe
        self.root = root
        self.http_port = _free_port()
        self.rpc_port = _free_port()
        while self.rpc_port == self.http_port:
            self.rpc_port = _free_port()
        self.conf = root / "influxdb.conf"
        self.conf.write_text(render_influxd_conf(root, self.http_port, self.rpc_port))
        self.log_path = root / "influxd.log"
        self.proc: _subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "InfluxInfo":
        if self.running:
            return self
        # INFLUXDB_* variables would override the generated config: start without them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        log = open(self.log_path, "ab")
        self.proc = _subprocess.Popen([self.exe, "-config", str(self.conf)], stdout=log, stderr=log,
                                      env=env, start_new_session=True)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import httpx

        deadline = _time.monotonic() + INFLUXD_START_TIMEOUT_S
        while _time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            _time.sleep(0.05)
        raise RuntimeError(f"influxd did not answer on {self.url}: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if not self.running:
            return
        self.proc.terminate()
        try:
            self.proc.wait(INFLUXD_STOP_TIMEOUT_S)
        except _subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, _signal.SIGKILL)
            self.proc.wait()

    def query(self, q: str, db: str | None = None, method: str = "GET") -> dict:
        """Run InfluxQL; raises on an HTTP error or a statement error."""
        import httpx

        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        r = httpx.request(method, f"{self.url}/query", params=params, timeout=30)
        r.raise_for_status()
        data = r.json()
        for res in data.get("results", []):
            if "error" in res:
                raise RuntimeError(f"InfluxQL error for {q!r}: {res['error']}")
        return data

    def create_database(self, name: str | None = None) -> str:
        """Create a database (a fresh unique one when no name is given); returns its name."""
        name = name or f"test_{uuid.uuid4().hex[:10]}"
        self.query(f'CREATE DATABASE "{name}"', method="POST")
        return name

    def drop_database(self, name: str) -> None:
        self.query(f'DROP DATABASE "{name}"', method="POST")

    def rows(self, q: str, db: str) -> list[dict]:
        """The rows of a single-statement query as dicts (column -> value), all series joined."""
        out: list[dict] = []
        for res in self.query(q, db=db).get("results", []):
            for series in res.get("series", []):
                tags = series.get("tags") or {}
                for values in series.get("values", []):
                    out.append({**tags, **dict(zip(series["columns"], values))})
        return out


@pytest.fixture(scope="session")
def influxd(tmp_path_factory) -> InfluxInfo:
    """A private influxd 1.x on free ports with its own config and data dir."""
    exe = find_influxd()
    if exe is None:
        need_service("influxd is not installed (apt-get install influxdb)")
    info = InfluxInfo(exe, tmp_path_factory.mktemp("influxd"))
    info.start()
    yield info
    info.stop()
