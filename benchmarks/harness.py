"""The real parts the benchmarks run against: a private Mosquitto (with or without
``set_tcp_nodelay``), the gateway as its own process (``python -m crp_cli.main gateway``, as
deployed), a stub server that accepts forwarded batches, and contract payloads."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import paho.mqtt.client as mqtt

from crp_cli.broker import Broker, BrokerUser, find_mosquitto, free_port
from crp_common.contract import gateway_status_topic

SITE = "DKR"
GATEWAY_READY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
NODELAY_LINE = "set_tcp_nodelay true"


class BenchError(RuntimeError):
    pass


def nodelay(sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------- broker


class BenchBroker(Broker):
    """The project's Mosquitto config; ``tcp_nodelay=False`` drops ``set_tcp_nodelay`` (Nagle on)."""

    def __init__(self, workdir: Path, users: list[BrokerUser], tcp_nodelay: bool = True):
        super().__init__(workdir, users=users)
        self.tcp_nodelay = tcp_nodelay

    def _write_mosquitto_files(self) -> Path:
        conf = super()._write_mosquitto_files()
        if not self.tcp_nodelay:
            text = conf.read_text()
            if NODELAY_LINE not in text:
                raise BenchError("the project's Mosquitto config no longer sets set_tcp_nodelay")
            conf.write_text(text.replace(NODELAY_LINE + "\n", ""))
        return conf


def bench_users() -> dict[str, BrokerUser]:
    def pw() -> str:
        return secrets.token_urlsafe(12)

    return {
        "gateway": BrokerUser("gw-bench", pw(), [f"topic readwrite crp/v1/{SITE}/#"]),
        "sim": BrokerUser("sim-bench", pw(), [f"topic readwrite crp/v1/{SITE}/#"]),
        "observer": BrokerUser("observer", pw(), [f"topic read crp/v1/{SITE}/#"]),
    }


@dataclass
class MqttEnv:
    broker: BenchBroker
    users: dict[str, BrokerUser]

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def port(self) -> int:
        return self.broker.port

    def creds(self, who: str) -> tuple[str, str]:
        u = self.users[who]
        return u.username, u.password


def start_broker(workdir: Path, tcp_nodelay: bool = True) -> MqttEnv:
    if find_mosquitto() is None:
        raise BenchError("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    users = bench_users()
    b = BenchBroker(workdir, list(users.values()), tcp_nodelay=tcp_nodelay)
    b.start()
    if b.kind != "mosquitto":
        b.stop()
        raise BenchError("the benchmarks need Mosquitto, not the embedded demo broker")
    return MqttEnv(b, users)


def mosquitto_version() -> str | None:
    exe = find_mosquitto()
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if "version" in line:
            return line.strip()
    return None


def client(env: MqttEnv, who: str, client_id: str, tcp_nodelay: bool = True,
           clean_session: bool = True) -> mqtt.Client:
    """A connected paho client (network loop not started)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                    protocol=mqtt.MQTTv311)
    c.username_pw_set(*env.creds(who))
    if tcp_nodelay:
        c.on_socket_open = lambda _c, _ud, sock: nodelay(sock)
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    c.connect(env.host, env.port, keepalive=30)
    return c


def forget_session(env: MqttEnv, who: str, client_id: str) -> None:
    """Drop a persistent session so the broker stops queueing for a client that has gone."""
    c = client(env, who, client_id, clean_session=True)
    c.loop_start()
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()


# --------------------------------------------------------------------------- stub server


class _StubHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        body = b'{"accepted":0,"duplicates":0,"rejected":[]}'
        self.server.posts += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - no snapshot here: the gateway keeps its cached one
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return None


class StubServer:
    """Accepts every forwarded batch with 200 (the server's dedup is not what is measured)."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _StubHandler)
        self.httpd.posts = 0  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="stub-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def posts(self) -> int:
        return self.httpd.posts  # type: ignore[attr-defined]

    def __enter__(self) -> "StubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def unused_url() -> str:
    """A local URL nobody listens on: the gateway's forwarder just backs off."""
    return f"http://127.0.0.1:{free_port()}"


# --------------------------------------------------------------------------- gateway process


def seed_spool(data_dir: Path, snapshot_json: str) -> None:
    """Give a gateway its authorization snapshot before it starts (what it keeps on disk)."""
    from gateway.spool import Spool

    sp = Spool(data_dir / "gateway.db")
    try:
        sp.put("snapshot", snapshot_json)
    finally:
        sp.close()


class GatewayProcess:
    """``python -m crp_cli.main gateway`` with CRP_* settings, like crp_cli.stack runs it."""

    def __init__(self, env: MqttEnv, workdir: Path, server_url: str, gateway_id: str = "gw-bench",
                 clock_spec: str = "system", extra_env: dict[str, str] | None = None):
        self.mqtt = env
        self.gateway_id = gateway_id
        self.data_dir = workdir / gateway_id
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"{gateway_id}.log"
        user, password = env.creds("gateway")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
        self.env.update({
            "PYTHONUNBUFFERED": "1",
            "CRP_GATEWAY_ID": gateway_id,
            "CRP_SITE": SITE,
            "CRP_MQTT_HOST": env.host,
            "CRP_MQTT_PORT": str(env.port),
            "CRP_MQTT_USERNAME": user,
            "CRP_MQTT_PASSWORD": password,
            "CRP_SERVER_URL": server_url,
            "CRP_GATEWAY_API_KEY": secrets.token_urlsafe(16),
            "CRP_DATA_DIR": str(self.data_dir),
            "CRP_CLOCK": clock_spec,
            "CRP_DEMO_MODE": "true",
            **(extra_env or {}),
        })
        self.proc: subprocess.Popen | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "gateway.db"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("gateway not started")
        return self.proc.pid

    def start(self) -> "GatewayProcess":
        """Start and wait until it has subscribed (its retained 'online' status shows it)."""
        ready = threading.Event()
        status_topic = gateway_status_topic(SITE, self.gateway_id)
        mon = client(self.mqtt, "observer", f"mon-{secrets.token_hex(4)}")

        def on_message(_c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                if json.loads(msg.payload).get("state") == "online":
                    ready.set()
            except ValueError:
                pass

        mon.on_message = on_message
        mon.subscribe(status_topic, qos=1)
        mon.loop_start()
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "crp_cli.main", "gateway"], env=self.env, stdout=fh,
                                     stderr=fh, stdin=subprocess.DEVNULL, start_new_session=True)
        fh.close()
        try:
            deadline = time.monotonic() + GATEWAY_READY_TIMEOUT_S
            while not ready.wait(0.1):
                if self.proc.poll() is not None:
                    raise BenchError(f"gateway exited: {self.log.read_text(errors='replace')[-2000:]}")
                if time.monotonic() > deadline:
                    raise BenchError("gateway never reported online")
        finally:
            mon.loop_stop()
            mon.disconnect()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        forget_session(self.mqtt, "gateway", f"crp-{self.gateway_id}")

    def __enter__(self) -> "GatewayProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for {pid}")


# --------------------------------------------------------------------------- payloads


def telemetry_line(node: str, seq: int, amps: float = 5.25) -> str:
    """A valid ``current`` message (the contract's most frequent telemetry)."""
    return json.dumps({"v": 1, "node": node, "boot": 1, "seq": seq, "up": 1000 + seq * 10, "amps": amps},
                      separators=(",", ":"))


def telemetry_lines(node: str, n: int, first_seq: int = 1) -> Iterator[str]:
    for seq in range(first_seq, first_seq + n):
        yield telemetry_line(node, seq, 4.0 + (seq % 50) / 10)
