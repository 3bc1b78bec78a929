"""Start a private MQTT broker: Mosquitto with the project's config when installed, otherwise
the embedded amqtt broker (demo only: MQTT 3.1.1, anonymous, no ACLs).

Used by ``crp demo`` and by the test suite (a private broker per test session, never the
machine's port 1883 instance)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
START_TIMEOUT_S = 10.0


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free port OUTSIDE the ephemeral range: a service that restarts (broker, server) must
    find its port again, and an outgoing connection may take any ephemeral port meanwhile."""
    lo, hi = _ephemeral_range()
    candidates = [p for p in range(10000, 30000) if not lo <= p <= hi] or list(range(1024, 10000))
    rng = random.Random()
    for _ in range(200):
        port = rng.choice(candidates)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_mosquitto() -> str | None:
    for c in MOSQUITTO_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("mosquitto")


def find_mosquitto_passwd() -> str | None:
    return shutil.which("mosquitto_passwd") or (
        "/usr/bin/mosquitto_passwd" if os.access("/usr/bin/mosquitto_passwd", os.X_OK) else None
    )


def wait_listening(host: str, port: int, timeout: float, proc: subprocess.Popen | None, what: str, log: Path,
                   error: type[Exception] = RuntimeError) -> None:
    """Wait until ``proc`` listens on ``host:port``; raise ``error`` with the end of its log if
    it exits first or does not listen within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise error(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise error(f"{what} did not listen on {host}:{port} within {timeout:.0f} s")


@dataclass
class BrokerUser:
    username: str
    password: str
    # ACL lines for this user, e.g. "topic write crp/v1/DKR/bandsaw-1/+"
    acl: list[str] = field(default_factory=list)


# Metering plugs (docs/plugs.md) speak their firmware's topics, outside crp/v1/.
PLUG_TOPIC_FAMILIES = ("tele/#", "stat/#", "cmnd/#", "shellies/#")
TASMOTA_FULL_TOPIC = "%prefix%/%topic%/"


def gateway_plug_acl(gen2_prefixes: tuple[str, ...] | list[str] = (), gateway_id: str | None = None) -> list[str]:
    """What the gateway needs to read and command plugs: the Tasmota and Shelly Gen1 families,
    each Shelly Gen2 prefix, and the RPC answers addressed to it (``crp-<gateway>/rpc``)."""
    lines = [f"topic readwrite {f}" for f in PLUG_TOPIC_FAMILIES]
    lines += [f"topic readwrite {p}/#" for p in gen2_prefixes]
    if gateway_id:
        lines.append(f"topic read crp-{gateway_id}/rpc")
    return lines


def plug_acl(kind: str, topic: str, gateway_id: str | None = None, full_topic: str = TASMOTA_FULL_TOPIC) -> list[str]:
    """One plug's own topics only: it publishes its reports and Last Will, and reads the
    commands addressed to it. ``topic``: Tasmota %topic%, Shelly Gen1 id or Shelly Gen2 prefix."""
    if any(c in topic for c in "#+") or not topic:
        raise ValueError(f"plug topic {topic!r}: no wildcards")
    if kind == "tasmota":
        def ft(prefix: str) -> str:
            return full_topic.replace("%prefix%", prefix).replace("%topic%", topic)
        return [f"topic write {ft('tele')}#", f"topic write {ft('stat')}#", f"topic read {ft('cmnd')}#"]
    if kind == "shelly1":
        base = f"shellies/{topic}"
        return [f"topic write {base}/#", f"topic read {base}/relay/+/command", f"topic read {base}/command",
                "topic read shellies/command"]
    if kind == "shelly2":
        lines = [f"topic write {topic}/online", f"topic write {topic}/status/#", f"topic write {topic}/events/#",
                 f"topic read {topic}/rpc", f"topic read {topic}/command/#"]
        if gateway_id:
            lines.append(f"topic write crp-{gateway_id}/rpc")  # answers to the gateway's RPC
        return lines
    raise ValueError(f"unknown plug type {kind!r}")


def render_acl(users: list[BrokerUser]) -> str:
    lines = ["# Generated: one block per user. Anything not listed is refused."]
    for u in users:
        lines.append(f"\nuser {u.username}")
        lines.extend(u.acl)
    return "\n".join(lines) + "\n"


def render_conf(port: int, data_dir: Path, passwd: Path | None, acl: Path | None) -> str:
    lines = [
        "# Generated by crp: a private broker with the project's settings.",
        "per_listener_settings false",
        f"listener {port} 127.0.0.1",
        # Badge decisions ride on request/reply: without this Nagle adds 40-90 ms per answer.
        "set_tcp_nodelay true",
        "persistence true",
        f"persistence_location {data_dir}/",
        # Sessions and queued messages reach the disk within a second: a broker killed by a
        # power cut forgets at most the last second (Mosquitto's default is 30 minutes).
        "autosave_interval 1",
        "max_queued_messages 100000",
        # While the gateway restarts, keep its samples and heartbeats too: they are the last
        # signs of life that end a session at a power cut.
        "queue_qos0_messages true",
        # Unlimited inflight: Mosquitto 2.0.11 with queue_qos0_messages and a bounded inflight
        # window loses QoS 1 messages queued for a client that died with its window full (found
        # by the gateway kill -9 test; reproduced alone). The gateway acknowledges after commit.
        "max_inflight_messages 0",
        "log_type error",
        "log_type warning",
        "log_dest stderr",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Started as root, Mosquitto drops to user "mosquitto", which cannot read a password
        # file in the caller's private temp folder: stay the user that wrote the files.
        lines.append("user root")
    if passwd is not None:
        lines += ["allow_anonymous false", f"password_file {passwd}"]
    else:
        lines += ["allow_anonymous true"]
    if acl is not None:
        lines.append(f"acl_file {acl}")
    return "\n".join(lines) + "\n"


class Broker:
    """A running broker process."""

    def __init__(self, workdir: Path, port: int | None = None, users: list[BrokerUser] | None = None,
                 prefer: str = "mosquitto"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = users or []
        self.prefer = prefer
        self.proc: subprocess.Popen | None = None
        self.kind = ""

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def _write_mosquitto_files(self) -> Path:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        passwd = acl = None
        if self.users:
            tool = find_mosquitto_passwd()
            if tool is None:
                raise RuntimeError("mosquitto_passwd not found: install the mosquitto package")
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            for u in self.users:
                subprocess.run([tool, "-b", str(passwd), u.username, u.password], check=True,
                               capture_output=True)
            os.chmod(passwd, 0o600)
            acl = self.workdir / "acl"
            acl.write_text(render_acl(self.users))
            os.chmod(acl, 0o600)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(render_conf(self.port, data, passwd, acl))
        return conf

    def start(self) -> "Broker":
        exe = find_mosquitto() if self.prefer == "mosquitto" else None
        log = open(self.workdir / "broker.log", "ab")
        if exe:
            conf = self._write_mosquitto_files()
            self.kind = "mosquitto"
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=log,
                                         start_new_session=True)
        else:
            self.kind = "amqtt"
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "crp_cli.embedded_broker", "--port", str(self.port)],
                stdout=log, stderr=log, start_new_session=True)
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        wait_listening(self.host, self.port, START_TIMEOUT_S, self.proc, self.kind, self.workdir / "broker.log")

    def kill(self) -> None:
        """kill -9: the broker dies as in a power cut (persistence keeps what was saved)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
