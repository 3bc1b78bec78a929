"""``ingest``: telemetry messages per second the gateway commits to its spool, beside a bare
paho subscriber that only parses the JSON and ``mosquitto_sub``, draining the same stream.

Each trial: one subscriber on a fresh view of the same private Mosquitto; a warm-up batch on
its own topic; then PUBLISHERS ``mosquitto_pub -l`` processes (C, one machine topic and one node
each) publish ``n`` contract ``current`` messages as fast as they can. The rate is
``received / (last arrival - publishers started)``; for the gateway an arrival is a row
committed to its SQLite spool. Loss and duplicates are counted by key ``(node, boot, seq)``
from the spool itself.

The bare paho subscriber is stock paho-mqtt. The gateway reads MQTT through its own
:mod:`gateway.mqttio` (paho with buffered socket reads and a lean decoder for PUBLISH packets),
so it can drain faster than stock paho: that is part of what the ratio measures."""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .figures import Delivery, Figure, count_delivery, median
from .harness import (
    SITE, BenchError, GatewayProcess, MqttEnv, start_broker, telemetry_lines, unused_url,
)

PUBLISHERS = 2
WARM_COUNT = 500
POLL_S = 0.01
QUIET_S = 3.0
DRAIN_TIMEOUT_S = 300.0
WARM_TIMEOUT_S = 30.0
PUB_INFLIGHT = 100
FILTER = f"crp/v1/{SITE}/+/+"
WARM_TOPIC = f"crp/v1/{SITE}/warm-up/current"
RATIO_TARGET = 0.7


@dataclass
class Trial:
    subscriber: str
    qos: int
    sent: int
    received: int
    seconds: float | None
    lost: int | None = None
    duplicated: int | None = None
    redelivered: int | None = None
    dead_letters: int | None = None

    @property
    def rate(self) -> float | None:
        return self.received / self.seconds if self.seconds else None


@dataclass
class Batch:
    """The lines each publisher sends, and the keys they name."""

    dir: Path
    prefix: str
    n: int
    files: list[tuple[str, Path]] = field(default_factory=list)  # (topic, file)
    keys: list[tuple[str, int, int]] = field(default_factory=list)

    def write(self) -> "Batch":
        per = [self.n // PUBLISHERS + (1 if i < self.n % PUBLISHERS else 0) for i in range(PUBLISHERS)]
        for i, k in enumerate(per):
            node = f"{self.prefix}-n{i}"
            path = self.dir / f"{self.prefix}-{i}.txt"
            path.write_text("\n".join(telemetry_lines(node, k)) + "\n")
            self.files.append((f"crp/v1/{SITE}/{self.prefix}-m{i}/current", path))
            self.keys.extend((node, 1, s) for s in range(1, k + 1))
        return self


def _pub_args(env: MqttEnv, topic: str, qos: int) -> list[str]:
    user, password = env.creds("sim")
    return ["mosquitto_pub", "-h", env.host, "-p", str(env.port), "-u", user, "-P", password, "-q", str(qos),
            "-M", str(PUB_INFLIGHT), "-t", topic, "-l"]


def publish(env: MqttEnv, files: list[tuple[str, Path]], qos: int) -> float:
    """Start one publisher per file; returns the wall-clock time they were started."""
    t0 = time.time()
    procs = []
    for topic, path in files:
        with open(path, "rb") as fh:
            procs.append(subprocess.Popen(_pub_args(env, topic, qos), stdin=fh, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=DRAIN_TIMEOUT_S)
        if p.returncode != 0:
            raise BenchError(f"mosquitto_pub failed ({p.returncode}): {err.decode(errors='replace')[:300]}")
    return t0


_warm_seq = itertools.count(1, WARM_COUNT)


def _warm(env: MqttEnv, workdir: Path, qos: int) -> None:
    """WARM_COUNT messages on their own topic, before the timed batch (keys never repeat)."""
    path = workdir / "warm.txt"
    path.write_text("\n".join(telemetry_lines("warm-up", WARM_COUNT, first_seq=next(_warm_seq))) + "\n")
    publish(env, [(WARM_TOPIC, path)], qos)


# --------------------------------------------------------------------------- subscribers


def trial_mosquitto_sub(env: MqttEnv, workdir: Path, batch: Batch, qos: int) -> Trial:
    user, password = env.creds("observer")
    out = workdir / "mosquitto_sub.out"
    with open(out, "wb") as fh:
        sub = subprocess.Popen(["mosquitto_sub", "-h", env.host, "-p", str(env.port), "-u", user, "-P", password,
                                "-q", str(qos), "-t", FILTER, "-C", str(batch.n + WARM_COUNT),
                                "-W", str(int(DRAIN_TIMEOUT_S)), "-F", "%t %U"], stdout=fh,
                               stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # no ready signal: connect and subscribe take a few ms
        _warm(env, workdir, qos)
        time.sleep(0.5)
        t0 = publish(env, batch.files, qos)
        _wait_quiet(sub, out)
    received, last = 0, None
    for line in out.read_text().splitlines():
        topic, _, ts = line.partition(" ")
        if topic != WARM_TOPIC:
            received += 1
            last = float(ts)
    return Trial("mosquitto_sub", qos, batch.n, received, (last - t0) if last else None)


def _wait_quiet(sub: subprocess.Popen, out: Path) -> None:
    """Until the subscriber exits (it got every message) or its output stops growing."""
    size, since = -1, time.monotonic()
    while sub.poll() is None:
        s = out.stat().st_size
        if s != size:
            size, since = s, time.monotonic()
        elif time.monotonic() - since > QUIET_S:
            sub.terminate()
            sub.wait()
            return
        time.sleep(0.1)


def trial_paho(env: MqttEnv, workdir: Path, batch: Batch, qos: int) -> Trial:
    user, password = env.creds("observer")
    p = subprocess.Popen([sys.executable, "-m", "benchmarks.drain", env.host, str(env.port), user, password, FILTER,
                          str(qos), str(batch.n), WARM_TOPIC, str(WARM_COUNT), str(QUIET_S)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    if p.stdout.readline().strip() != "ready":
        raise BenchError("paho drain never subscribed")
    _warm(env, workdir, qos)
    if p.stdout.readline().strip() != "warm":
        raise BenchError("paho drain never got its warm-up")
    t0 = publish(env, batch.files, qos)
    res = json.loads(p.stdout.readline())
    p.wait(DRAIN_TIMEOUT_S)
    last = res["last"]
    return Trial("paho", qos, batch.n, res["received"], (last - t0) if last else None)


def _spool_count(db: sqlite3.Connection, prefix: str) -> int:
    return int(db.execute("SELECT COUNT(*) FROM spool WHERE source LIKE ?", (f"{prefix}-%",)).fetchone()[0])


def trial_gateway(env: MqttEnv, workdir: Path, batch: Batch, qos: int, gateway_id: str) -> Trial:
    gw = GatewayProcess(env, workdir, unused_url(), gateway_id=gateway_id).start()
    try:
        db = sqlite3.connect(f"file:{gw.db_path}?mode=ro", uri=True, timeout=30)
        try:
            _warm(env, workdir, qos)
            deadline = time.monotonic() + WARM_TIMEOUT_S
            while _spool_count(db, "warm") < WARM_COUNT:
                if time.monotonic() > deadline:
                    raise BenchError("gateway never spooled its warm-up")
                time.sleep(0.05)
            base = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM spool").fetchone()[0])
            t0 = publish(env, batch.files, qos)
            last_id, last_t = base, None
            since = time.monotonic()
            while True:
                top = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM spool").fetchone()[0])
                now = time.time()
                if top != last_id:
                    last_id, last_t, since = top, now, time.monotonic()
                    if top - base >= batch.n and _spool_count(db, batch.prefix) >= batch.n:
                        break
                elif time.monotonic() - since > QUIET_S:
                    break
                time.sleep(POLL_S)
        finally:
            db.close()
    finally:
        gw.stop()
    delivery, redelivered, dead = gateway_delivery(gw.db_path, batch)
    return Trial("gateway", qos, batch.n, delivery.unique, (last_t - t0) if last_t else None,
                 lost=delivery.lost, duplicated=delivery.duplicated, redelivered=redelivered, dead_letters=dead)


def gateway_delivery(db_path: Path, batch: Batch) -> tuple[Delivery, int, int]:
    """What the gateway's spool holds of ``batch``: (delivery, redeliveries it refused, dead letters)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        keys = db.execute("SELECT source, boot, seq FROM spool WHERE source LIKE ?", (f"{batch.prefix}-%",))
        delivery = count_delivery(batch.keys, keys)
        counters = dict(db.execute("SELECT name, n FROM counters"))
        dead = int(db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
    finally:
        db.close()
    return delivery, int(counters.get("duplicate", 0)), dead


# --------------------------------------------------------------------------- the benchmark


def run_trials(env: MqttEnv, workdir: Path, n: int, qos: int, rounds: int,
               subscribers: tuple[str, ...] = ("mosquitto_sub", "paho", "gateway")) -> list[Trial]:
    trials: list[Trial] = []
    for r in range(rounds):
        for sub in subscribers:
            prefix = f"q{qos}r{r}{sub[:2]}"
            batch = Batch(workdir, prefix, n).write()
            if sub == "mosquitto_sub":
                trials.append(trial_mosquitto_sub(env, workdir, batch, qos))
            elif sub == "paho":
                trials.append(trial_paho(env, workdir, batch, qos))
            else:
                trials.append(trial_gateway(env, workdir, batch, qos, gateway_id=f"gw-{prefix}"))
    return trials


def _median_rate(trials: list[Trial], sub: str) -> float | None:
    rates = [t.rate for t in trials if t.subscriber == sub and t.rate]
    return median(rates) if rates else None


def summarise(trials: list[Trial], qos: int) -> list[Figure]:
    b = "ingest"
    gw, paho, msub = (_median_rate(trials, s) for s in ("gateway", "paho", "mosquitto_sub"))
    gws = [t for t in trials if t.subscriber == "gateway"]
    lost = sum(t.lost or 0 for t in gws)
    dup = sum(t.duplicated or 0 for t in gws)
    sent = sum(t.sent for t in gws)
    ref_lost = {s: sum(t.sent - t.received for t in trials if t.subscriber == s) for s in ("paho", "mosquitto_sub")}
    figs = [
        Figure(b, f"QoS {qos} gateway (committed to spool)", gw, "msg/s",
               reference=f"paho {paho:,.0f}/s, mosquitto_sub {msub:,.0f}/s" if paho and msub else "",
               note=f"median of {len(gws)} runs of {gws[0].sent if gws else 0:,} msgs"),
        Figure(b, f"QoS {qos} gateway / bare paho", gw / paho if gw and paho else None, "x",
               reference="bare paho, same stream", target=f">= {RATIO_TARGET}",
               met=(gw / paho >= RATIO_TARGET) if gw and paho else False),
        Figure(b, f"QoS {qos} gateway / mosquitto_sub", gw / msub if gw and msub else None, "x",
               reference="mosquitto_sub -C N, same stream"),
        Figure(b, f"QoS {qos} gateway lost", lost, "msgs", reference=f"of {sent:,} sent; "
               f"paho missed {ref_lost['paho']:,}, mosquitto_sub {ref_lost['mosquitto_sub']:,}",
               target="0", met=lost == 0),
        Figure(b, f"QoS {qos} gateway duplicated", dup, "msgs",
               reference=f"redeliveries refused: {sum(t.redelivered or 0 for t in gws)}", target="0",
               met=dup == 0),
    ]
    return figs


def bench_ingest(n: int = 100_000, n_qos1: int = 30_000, rounds: int = 3, workdir: Path | None = None
                 ) -> tuple[list[Figure], dict]:
    """QoS 0 and QoS 1 runs; returns the figures and every trial."""
    if shutil.which("mosquitto_pub") is None or shutil.which("mosquitto_sub") is None:
        raise BenchError("mosquitto_pub/mosquitto_sub not found (apt-get install mosquitto-clients)")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=workdir) as tmp:
        wd = Path(tmp)
        env = start_broker(wd / "broker")
        try:
            t0 = run_trials(env, wd, n, 0, rounds)
            t1 = run_trials(env, wd, n_qos1, 1, rounds)
        finally:
            env.broker.stop()
    figs = summarise(t0, 0) + summarise(t1, 1)
    raw = {"publishers": PUBLISHERS, "trials": [t.__dict__ | {"rate": t.rate} for t in t0 + t1]}
    return figs, raw
