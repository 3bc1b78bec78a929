"""``gateway_memory``: resident memory of the gateway process at a steady message rate.

The gateway runs as deployed (its own process, forwarding to a stub server that accepts every
batch); one paho publisher plays MACHINES nodes sending a mix of telemetry at ``rate`` msg/s,
paced on absolute times. RSS (VmRSS) is sampled every SAMPLE_S."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

from crp_common.contract import topic

from .figures import Figure, slope_per_minute
from .harness import SITE, GatewayProcess, StubServer, client, rss_mb, start_broker

RSS_TARGET_MB = 80.0
SLOPE_TARGET_MB_PER_MIN = 0.5
MACHINES = 20
SAMPLE_S = 5.0
TICK_S = 0.01
SETTLE_S = 10.0  # the first samples, while caches fill, are not "the start"
DRAIN_WAIT_S = 30.0


def _payload(node: str, seq: int, up: int) -> tuple[str, bytes]:
    kinds = ("current", "current", "current", "temp", "vib", "hb")
    kind = kinds[seq % len(kinds)]
    body: dict = {"v": 1, "node": node, "boot": 1, "seq": seq, "up": up}
    if kind == "current":
        body["amps"] = 4.0 + seq % 40 / 10
    elif kind == "temp":
        body["c"] = 30.0 + seq % 20 / 2
    elif kind == "vib":
        body["rms"] = 1.0 + seq % 10 / 10
    else:
        body.update(relay=False, motor=False, rssi=-60)
    return kind, json.dumps(body, separators=(",", ":")).encode()


def bench_gateway_memory(duration_s: float = 600.0, rate: float = 1000.0, workdir: Path | None = None
                         ) -> tuple[list[Figure], dict]:
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=workdir) as tmp:
        wd = Path(tmp)
        env = start_broker(wd / "broker")
        try:
            with StubServer() as stub, GatewayProcess(env, wd, stub.url, gateway_id="gw-memory") as gw:
                pub = client(env, "sim", "mem-publisher")
                pub.loop_start()
                seqs = [0] * MACHINES
                booted = time.monotonic()
                samples: list[tuple[float, float]] = [(0.0, rss_mb(gw.pid))]
                sent = 0
                t0 = time.monotonic()
                next_sample = t0 + SAMPLE_S
                while True:
                    now = time.monotonic()
                    if now - t0 >= duration_s:
                        break
                    due = int((now - t0) * rate) - sent
                    for _ in range(due):
                        i = sent % MACHINES
                        seqs[i] += 1
                        kind, payload = _payload(f"mem-n{i:02d}", seqs[i], 1000 + int((now - booted) * 1000))
                        pub.publish(topic(SITE, f"mem-m{i:02d}", kind), payload, qos=0)
                        sent += 1
                    if now >= next_sample:
                        samples.append((now - t0, rss_mb(gw.pid)))
                        next_sample += SAMPLE_S
                    time.sleep(TICK_S)
                elapsed = time.monotonic() - t0
                samples.append((elapsed, rss_mb(gw.pid)))
                pub.disconnect()
                pub.loop_stop()
                spooled = _wait_spooled(gw.db_path, sent)
                posts = stub.posts
        finally:
            env.broker.stop()
    steady = [s for s in samples if s[0] >= min(SETTLE_S, duration_s / 4)] or samples
    start_mb, end_mb = steady[0][1], samples[-1][1]
    peak = max(s[1] for s in samples)
    second_half = [s for s in samples if s[0] >= elapsed / 2]
    slope = slope_per_minute(second_half)
    b = "gateway_memory"
    figs = [
        Figure(b, f"RSS at start (t={steady[0][0]:.0f} s)", start_mb, "MB", reference=f"{sent / elapsed:,.0f} msg/s",
               target=f"< {RSS_TARGET_MB:g} MB", met=start_mb < RSS_TARGET_MB),
        Figure(b, f"RSS after {elapsed / 60:.1f} min", end_mb, "MB", reference=f"peak {peak:.1f} MB",
               target=f"< {RSS_TARGET_MB:g} MB", met=peak < RSS_TARGET_MB),
        Figure(b, "RSS growth, 2nd half", slope, "MB/min", reference=f"end - start {end_mb - start_mb:+.1f} MB",
               target=f"< {SLOPE_TARGET_MB_PER_MIN:g} MB/min", met=slope < SLOPE_TARGET_MB_PER_MIN,
               note=f"{spooled:,} of {sent:,} msgs spooled, {posts} batches forwarded"),
    ]
    raw = {"rate": rate, "duration_s": elapsed, "sent": sent, "spooled": spooled, "forward_posts": posts,
           "samples": samples}
    return figs, raw


def _wait_spooled(db_path: Path, sent: int) -> int:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        deadline = time.monotonic() + DRAIN_WAIT_S
        while True:
            n = int(db.execute("SELECT COUNT(*) FROM spool WHERE source LIKE 'mem-%'").fetchone()[0])
            if n >= sent or time.monotonic() > deadline:
                return n
            time.sleep(0.2)
    finally:
        db.close()
