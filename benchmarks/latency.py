"""``badge_latency``: from a node's badge request (publish) to the decision's arrival, through
a private Mosquitto and the gateway process deciding from its cached snapshot; beside the same
round trip answered by a bare paho echo (the floor), with TCP_NODELAY on broker and clients,
and, for context, that floor with Nagle's algorithm on (broker and clients)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from crp_common.contract import topic

from .figures import Figure, percentile
from .harness import SITE, BenchError, GatewayProcess, MqttEnv, client, start_broker, unused_url

P99_TARGET_MS = 5.0
TAP_TIMEOUT_S = 2.0
WARMUP_TAPS = 30
ECHO_MACHINE = "echo-m"
BENCH_DATE = dt.date(2026, 3, 10)


class Node:
    """A node's side of the request/reply: one outstanding request at a time."""

    def __init__(self, env: MqttEnv, machine: str, node_id: str, tcp_nodelay: bool):
        self.machine, self.node_id = machine, node_id
        self.req = 0
        self.answer: dict[str, Any] | None = None
        self.got = threading.Event()
        self.booted = time.monotonic()
        self.c = client(env, "sim", f"node-{node_id}-{time.time_ns()}", tcp_nodelay=tcp_nodelay)
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *_: subscribed.set()
        self.c.on_message = self._on_message
        self.c.subscribe(topic(SITE, machine, "decision"), qos=1)
        self.c.loop_start()
        if not subscribed.wait(10):
            raise BenchError("node never subscribed")

    def _on_message(self, _c: Any, _ud: Any, msg: Any) -> None:
        try:
            d = json.loads(msg.payload)
        except ValueError:
            return
        if d.get("req") == self.req or d.get("seq") == self.req:
            self.answer = d
            self.got.set()

    def tap(self, uid: str) -> tuple[float | None, dict[str, Any] | None]:
        """Seconds from publish to the decision (None on timeout) and the decision."""
        self.req += 1
        self.got.clear()
        self.answer = None
        payload = json.dumps({"v": 1, "node": self.node_id, "boot": 1, "seq": self.req,
                              "up": 1000 + int((time.monotonic() - self.booted) * 1000), "uid": uid})
        t0 = time.perf_counter()
        self.c.publish(topic(SITE, self.machine, "badge"), payload, qos=1)
        if not self.got.wait(TAP_TIMEOUT_S):
            return None, None
        return time.perf_counter() - t0, self.answer

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _pick(workshop: Any) -> tuple[str, str, str]:
    """(machine, node, uid): an active artisan qualified for the machine on BENCH_DATE."""
    for m in workshop.machines:
        for a in workshop.artisans:
            if a.status == "active" and a.active_badges and a.qualified_for(m.type, BENCH_DATE):
                return m.id, m.node, a.active_badges[0].uid
    raise BenchError("the demo workshop has no qualified artisan")


def taps(node: Node, uid: str, n: int) -> tuple[list[float], Counter]:
    for _ in range(WARMUP_TAPS):
        node.tap(uid)
    lat: list[float] = []
    results: Counter = Counter()
    for _ in range(n):
        s, d = node.tap(uid)
        if s is None:
            results["timeout"] += 1
        else:
            lat.append(s * 1000)
            results[str(d.get("result", "echo")) if d else "?"] += 1
    return lat, results


def echo_round_trips(env: MqttEnv, n: int, tcp_nodelay: bool) -> tuple[list[float], Counter]:
    user, password = env.creds("gateway")
    p = subprocess.Popen([sys.executable, "-m", "benchmarks.echo", env.host, str(env.port), user, password,
                          topic(SITE, ECHO_MACHINE, "badge"), topic(SITE, ECHO_MACHINE, "decision"),
                          "1" if tcp_nodelay else "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise BenchError("echo never subscribed")
        node = Node(env, ECHO_MACHINE, "echo-node", tcp_nodelay)
        try:
            return taps(node, "04A1B2C3", n)
        finally:
            node.close()
    finally:
        assert p.stdin is not None
        p.stdin.close()
        p.wait(10)


def _stats(lat: list[float]) -> dict[str, float | None]:
    if not lat:
        return {"p50": None, "p99": None, "max": None}
    return {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat)}


def bench_badge_latency(n: int = 2000, n_nagle: int = 100, workdir: Path | None = None
                        ) -> tuple[list[Figure], dict]:
    from firmware_sim.workshop import load_workshop

    ws = load_workshop()
    machine, node_id, uid = _pick(ws)
    snap = ws.snapshot(version="bench").model_dump_json()
    with tempfile.TemporaryDirectory(prefix="bench-latency-", dir=workdir) as tmp:
        wd = Path(tmp)
        env = start_broker(wd / "broker")
        try:
            gw = GatewayProcess(env, wd, unused_url(), gateway_id="gw-latency")
            from .harness import seed_spool

            seed_spool(gw.data_dir, snap)
            with gw:
                node = Node(env, machine, node_id, tcp_nodelay=True)
                try:
                    gw_lat, gw_results = taps(node, uid, n)
                finally:
                    node.close()
            echo_lat, echo_results = echo_round_trips(env, n, tcp_nodelay=True)
        finally:
            env.broker.stop()
        env2 = start_broker(wd / "broker-nagle", tcp_nodelay=False)
        try:
            nagle_lat, nagle_results = echo_round_trips(env2, n_nagle, tcp_nodelay=False)
        finally:
            env2.broker.stop()
    g, e, ng = _stats(gw_lat), _stats(echo_lat), _stats(nagle_lat)
    b = "badge_latency"

    def ms(v: float | None) -> str:
        return f"{v:.2f} ms" if v is not None else "n/a"

    figs = [
        Figure(b, "gateway p50", g["p50"], "ms", reference=f"echo floor p50 {ms(e['p50'])}",
               note=f"{n} taps, {dict(gw_results)}"),
        Figure(b, "gateway p99", g["p99"], "ms", reference=f"echo floor p99 {ms(e['p99'])}",
               target=f"< {P99_TARGET_MS:g} ms", met=g["p99"] is not None and g["p99"] < P99_TARGET_MS
               and gw_results["timeout"] == 0),
        Figure(b, "floor with Nagle on, p50", ng["p50"], "ms", reference=f"p99 {ms(ng['p99'])}",
               note=f"{n_nagle} echoes, no TCP_NODELAY on broker or clients; context only"),
    ]
    raw = {"machine": machine, "gateway": g | {"results": dict(gw_results)},
           "echo_nodelay": e | {"results": dict(echo_results)},
           "echo_nagle": ng | {"results": dict(nagle_results)}}
    return figs, raw
