"""A whole workshop on one machine: broker, server and gateway as real processes, seeded
through the API from a workshop file. Used by `crp demo` and the end-to-end tests.

Each part runs as its own process with its own settings, exactly as deployed, so a test can
kill -9 one of them and start it again."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import paho.mqtt.client as mqtt

from crp_common.contract import gateway_status_topic
from crp_common.plug_acl import gateway_plug_acl, plug_acl

from .broker import Broker, BrokerUser, free_port, wait_listening

SERVER_START_TIMEOUT_S = 60.0
GATEWAY_READY_TIMEOUT_S = 30.0


class StackError(RuntimeError):
    pass


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> "Proc":
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=fh, stderr=fh, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()


def crp_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "crp_cli.main", *args]


@dataclass
class GatewayStatus:
    """The gateway's retained presence message, followed over MQTT."""

    latest: dict[str, Any] = field(default_factory=dict)
    event: threading.Condition = field(default_factory=threading.Condition)

    def update(self, payload: dict[str, Any]) -> None:
        with self.event:
            self.latest = payload
            self.event.notify_all()

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.event:
            while not pred(self.latest):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StackError(f"gateway status never satisfied the condition; last: {self.latest}")
                self.event.wait(left)
            return dict(self.latest)


class Stack:
    """Start and stop the parts; everything lives under ``workdir``."""

    def __init__(self, workdir: Path, database_url: str, site: str = "DKR", gateway_id: str = "gw-dkr-1",
                 clock_spec: str = "system", api_port: int | None = None, prefer_broker: str = "mosquitto",
                 server_env: dict[str, str] | None = None, gateway_env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.site = site
        self.gateway_id = gateway_id
        self.clock_spec = clock_spec
        self.api_port = api_port or free_port()
        self.admin_token = secrets.token_urlsafe(24)
        self.gateway_api_key = ""
        self.server_env = server_env or {}
        self.gateway_env = gateway_env or {}
        self.users = {
            # The gateway also reads and commands the metering plugs (docs/plugs.md).
            "gateway": BrokerUser(gateway_id, secrets.token_urlsafe(16),
                                  [f"topic readwrite crp/v1/{site}/#", *gateway_plug_acl(gateway_id=gateway_id)]),
            "sim": BrokerUser("sim", secrets.token_urlsafe(16), [f"topic readwrite crp/v1/{site}/#"]),
            "monitor": BrokerUser("monitor", secrets.token_urlsafe(16), [f"topic read crp/v1/{site}/#"]),
        }
        self.broker = Broker(self.workdir / "broker", users=list(self.users.values()), prefer=prefer_broker)
        self.server: Proc | None = None
        self.gateway: Proc | None = None
        self.gw_status = GatewayStatus()
        self._monitor: mqtt.Client | None = None

    # ------------------------------------------------------------------ urls and clients

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {self.admin_token}"},
                            timeout=30)

    def add_plug(self, plug_id: str, kind: str, topic: str) -> BrokerUser:
        """A broker user of its own for one metering plug (username = plug id), allowed on that
        plug's topics only; a Shelly Gen2 prefix is added to the gateway's ACL. Before
        :meth:`start_broker`."""
        if plug_id in self.users:
            raise StackError(f"broker user {plug_id} exists already")
        user = BrokerUser(plug_id, secrets.token_urlsafe(16), plug_acl(kind, topic, gateway_id=self.gateway_id))
        self.users[plug_id] = user
        self.broker.users.append(user)
        if kind == "shelly2":
            self.users["gateway"].acl.append(f"topic readwrite {topic}/#")
        return user

    def mqtt_creds(self, who: str) -> tuple[str, str]:
        if self.broker.kind == "amqtt":
            return "", ""  # the embedded demo broker is anonymous
        u = self.users[who]
        return u.username, u.password

    # ------------------------------------------------------------------ parts

    def start_broker(self) -> None:
        self.broker.start()

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def notify_mqtt_env(self) -> dict[str, str]:
        """Let the server publish technicians' alerts on the workshop broker."""
        user, password = self.mqtt_creds("gateway")
        return {"CRP_NOTIFY_MQTT_HOST": self.broker.host, "CRP_NOTIFY_MQTT_PORT": str(self.broker.port),
                "CRP_NOTIFY_MQTT_USERNAME": user, "CRP_NOTIFY_MQTT_PASSWORD": password}

    def start_server(self) -> None:
        env = self._base_env()
        env.update({
            "DATABASE_URL": self.database_url,
            "CRP_DATABASE_URL": self.database_url,
            "CRP_DEMO_MODE": "true",
            "CRP_ADMIN_TOKEN": self.admin_token,
            "CRP_SECRET_KEY": secrets.token_urlsafe(32),
            "CRP_CLOCK": self.clock_spec,
            **self.server_env,
        })
        self.server = Proc("server", crp_cmd("server", "--host", "127.0.0.1", "--port", str(self.api_port)), env,
                           self.workdir / "server.log").start()
        wait_listening("127.0.0.1", self.api_port, SERVER_START_TIMEOUT_S, self.server.proc, "server",
                       self.server.log, error=StackError)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise StackError("server /health never answered 200")

    def gateway_command_env(self) -> dict[str, str]:
        user, password = self.mqtt_creds("gateway")
        env = self._base_env()
        env.update({
            "CRP_GATEWAY_ID": self.gateway_id,
            "CRP_SITE": self.site,
            "CRP_MQTT_HOST": self.broker.host,
            "CRP_MQTT_PORT": str(self.broker.port),
            "CRP_MQTT_USERNAME": user,
            "CRP_MQTT_PASSWORD": password,
            "CRP_SERVER_URL": self.api_url,
            "CRP_GATEWAY_API_KEY": self.gateway_api_key,
            "CRP_DATA_DIR": str(self.workdir / "gateway"),
            "CRP_CLOCK": self.clock_spec,
            "CRP_DEMO_MODE": "true",
            "CRP_SNAPSHOT_INTERVAL_S": "1",
            **self.gateway_env,
        })
        return env

    def start_gateway(self, wait_cache: bool = True) -> None:
        self._ensure_monitor()
        self.gateway = Proc("gateway", crp_cmd("gateway", "--verbose"), self.gateway_command_env(),
                            self.workdir / "gateway.log").start()
        if wait_cache:
            boot_before = self.gw_status.latest.get("boot", 0)
            self.gw_status.wait(lambda s: s.get("cache") is not None and s.get("boot", 0) > boot_before,
                                GATEWAY_READY_TIMEOUT_S)

    def _ensure_monitor(self) -> None:
        if self._monitor is not None:
            return
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"monitor-{secrets.token_hex(4)}",
                        protocol=mqtt.MQTTv311)
        user, password = self.mqtt_creds("monitor")
        if user:
            c.username_pw_set(user, password)
        topic = gateway_status_topic(self.site, self.gateway_id)

        def on_connect(client, _ud, _f, rc, _p=None):
            client.subscribe(topic, qos=1)

        def on_message(_c, _ud, msg):
            try:
                self.gw_status.update(json.loads(msg.payload))
            except ValueError:
                pass

        c.on_connect = on_connect
        c.on_message = on_message
        c.connect(self.broker.host, self.broker.port, keepalive=30)
        c.loop_start()
        self._monitor = c

    # ------------------------------------------------------------------ seeding

    def seed(self, workshop: Any) -> dict[str, int]:
        """Register the workshop through the API, as a manager would. Returns artisan id map
        (workshop id -> server id)."""
        ids: dict[int, int] = {}
        with self.api() as api:
            def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
                r = api.post(path, json=body)
                if r.status_code >= 300:
                    raise StackError(f"POST {path} -> {r.status_code}: {r.text[:500]}")
                return r.json()

            s = workshop.site
            post("/api/v1/sites", {"code": s.code, "name": s.name, "tz": s.tz, "currency": s.currency,
                                   "locale": s.locale})
            for t in workshop.machine_types:
                post("/api/v1/machine-types", {"code": t.code, "name_fr": t.name_fr, "name_en": t.name_en,
                                               "idle_timeout_s": t.idle_timeout_s})
            for m in workshop.machines:
                post("/api/v1/machines", {"id": m.id, "site": s.code, "type": m.type, "name": m.name,
                                          "node_id": m.node})
            for a in workshop.artisans:
                created = post("/api/v1/artisans", {
                    "site": s.code, "name": a.name, "phone": a.phone, "trade": a.trade,
                    "cooperative": a.cooperative, "member": a.member, "status": a.status})
                ids[a.id] = created["id"]
                for b in a.badges:
                    post("/api/v1/badges", {"uid": b.uid, "artisan_id": created["id"]})
                    if b.status != "active":
                        r = api.patch(f"/api/v1/badges/{b.uid}", json={"status": b.status})
                        if r.status_code >= 300:
                            raise StackError(f"PATCH badge {b.uid} -> {r.status_code}: {r.text[:300]}")
                for q in a.qualifications:
                    post("/api/v1/qualifications", {
                        "artisan_id": created["id"], "machine_type": q.type,
                        "expires_on": q.expires_on.isoformat() if q.expires_on else None})
            gw = post("/api/v1/gateways", {"id": self.gateway_id, "site": s.code})
            self.gateway_api_key = gw["api_key"]
        return ids

    # ------------------------------------------------------------------ waiting

    def wait_settled(self, timeout: float, after_ms: int = 0, open_sessions: int | None = 0) -> dict[str, Any]:
        """Wait until the gateway reports, at a gateway time after ``after_ms``, that it has
        forwarded everything (and, by default, that no session is open)."""
        def done(s: dict[str, Any]) -> bool:
            return (s.get("now", 0) > after_ms and s.get("pending") == 0
                    and (open_sessions is None or s.get("open_sessions") == open_sessions))
        return self.gw_status.wait(done, timeout)

    def summary(self) -> dict[str, Any]:
        with self.api() as api:
            r = api.get("/api/v1/summary")
            r.raise_for_status()
            return r.json()

    # ------------------------------------------------------------------ teardown

    def stop(self) -> None:
        for p in (self.gateway, self.server):
            if p is not None:
                p.stop()
        if self._monitor is not None:
            self._monitor.disconnect()  # first: a stopped loop would wait out its 1 s select
            self._monitor.loop_stop()
            self._monitor = None
        self.broker.stop()
