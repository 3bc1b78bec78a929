"""The gateway's ingest path (network thread -> writer -> spool): arrival order kept, each QoS 1
message acknowledged once and only after the transaction holding it committed, nothing
acknowledged when the write fails, and a badge decision published before the spool sees it."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from crp_common.clock import ScaledClock
from gateway import service
from gateway.service import Gateway
from gateway.settings import GatewaySettings
from gateway.spool import Spool

T0 = 1_790_000_000.0
TOPIC = "crp/v1/DKR/bandsaw-1/current"
NODE = "node-bandsaw-1"


class Msg(mqtt.MQTTMessage):
    def __init__(self, topic: str, body: bytes, mid: int, qos: int = 1):
        super().__init__(mid=mid, topic=topic.encode())
        self.payload = body
        self.qos = qos


def current(seq: int) -> bytes:
    return json.dumps({"v": 1, "node": NODE, "boot": 1, "seq": seq, "up": 1000 + seq, "amps": 1.5}).encode()


class Recorder:
    """Stands for the MQTT client: records publishes and acknowledgements; at each
    acknowledgement, what another connection sees committed in the spool."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self.published: list[tuple[str, bytes]] = []
        self.acks: list[tuple[int, int]] = []
        self.violations: list[Any] = []
        self.committed_at_ack: list[int] = []
        self.lock = threading.Lock()

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.published.append((topic, payload))

    def flush_from_callback(self) -> None:
        pass

    def ack_many(self, acks: list[tuple[int, int]]) -> None:
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            seqs = {s for (s,) in db.execute("SELECT seq FROM spool WHERE source = ?", (NODE,))}
            dead = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
        finally:
            db.close()
        with self.lock:
            for mid, qos in acks:
                # mids below 100_000 are current messages with seq == mid; the others dead letters
                if mid < 100_000 and mid not in seqs:
                    self.violations.append(("acked before commit", mid))
                if mid >= 100_000 and dead == 0:
                    self.violations.append(("dead letter acked before commit", mid))
            self.acks.extend(acks)


def make_gateway(tmp: Path) -> tuple[Gateway, Recorder]:
    s = GatewaySettings(_env_file=None, data_dir=tmp, demo_mode=True, mqtt_port=1, server_url="http://127.0.0.1:1")
    gw = Gateway(s, clock=ScaledClock(real_origin=0.0, sim_origin=T0, speed=1.0))
    rec = Recorder(tmp / "gateway.db")
    gw.client = rec  # type: ignore[assignment]
    return gw, rec


def run_writer(gw: Gateway) -> threading.Thread:
    th = threading.Thread(target=gw._writer, daemon=True)
    th.start()
    return th


def wait_for(cond: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_order_kept_and_acks_only_after_commit(tmp_path: Path) -> None:
    gw, rec = make_gateway(tmp_path)
    writer = run_writer(gw)
    n = 5000
    expected_acks = []
    for seq in range(1, n + 1):
        gw._on_message(None, None, Msg(TOPIC, current(seq), seq))
        expected_acks.append((seq, 1))
        if seq % 1000 == 0:  # a malformed message and a duplicate now and then
            gw._on_message(None, None, Msg(TOPIC, b"{not json", 100_000 + seq))
            expected_acks.append((100_000 + seq, 1))
            gw._on_message(None, None, Msg(TOPIC, current(seq), seq))
            expected_acks.append((seq, 1))
        if seq % 700 == 0:
            time.sleep(0.03)  # let batches of different sizes form
    gw._on_message(None, None, Msg(TOPIC, current(n + 1), n + 1, qos=0))  # QoS 0: nothing to acknowledge
    wait_for(lambda: len(rec.acks) >= len(expected_acks))
    gw.stop_event.set()
    writer.join(30)
    assert rec.violations == []
    assert rec.acks == expected_acks  # each once, in arrival order
    rows = gw.spool.db.execute("SELECT seq FROM spool WHERE source = ? ORDER BY id", (NODE,)).fetchall()
    assert [r[0] for r in rows] == list(range(1, n + 2))  # spool order = arrival order, no duplicate
    assert gw.spool.counters().get("duplicate") == n // 1000
    assert gw.spool.dead_letter_counts() == {"not_json": n // 1000}
    gw.spool.close()


def test_nothing_acknowledged_when_the_write_fails(tmp_path: Path, monkeypatch: Any) -> None:
    gw, rec = make_gateway(tmp_path)
    real = Spool.write
    failing = threading.Event()
    failing.set()

    def write(self: Spool, *a: Any, **kw: Any) -> int:
        if failing.is_set():
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, *a, **kw)

    monkeypatch.setattr(Spool, "write", write)
    writer = run_writer(gw)
    for seq in range(1, 51):
        gw._on_message(None, None, Msg(TOPIC, current(seq), seq))
    wait_for(gw.q.empty)
    time.sleep(0.2)
    assert rec.acks == []  # the broker will deliver them again
    failing.clear()
    gw._on_message(None, None, Msg(TOPIC, current(51), 51))
    wait_for(lambda: rec.acks)
    gw.stop_event.set()
    writer.join(30)
    assert rec.acks == [(51, 1)]
    gw.spool.close()


def test_badge_decision_published_before_the_spool_write(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(service, "WRITE_WAIT_S", 0.0)
    gw, rec = make_gateway(tmp_path)
    badge = json.dumps({"v": 1, "node": NODE, "boot": 1, "seq": 1, "up": 1000, "uid": "04A1B2C3"}).encode()
    gw._on_message(None, None, Msg("crp/v1/DKR/bandsaw-1/badge", badge, 1))
    # No writer running: the decision is out, the request not yet on disk nor acknowledged.
    assert [t for t, _ in rec.published] == ["crp/v1/DKR/bandsaw-1/decision"]
    assert json.loads(rec.published[0][1])["req"] == 1
    assert gw.spool.db.execute("SELECT COUNT(*) FROM spool WHERE source = ?", (NODE,)).fetchone()[0] == 0
    assert rec.acks == []
    writer = run_writer(gw)
    wait_for(lambda: rec.acks)
    gw.stop_event.set()
    writer.join(30)
    assert rec.acks == [(1, 1)] and rec.violations == []
    assert gw.spool.db.execute("SELECT kind FROM spool WHERE source = ?", (NODE,)).fetchall() == [("badge",)]
    gw.spool.close()


def test_a_badge_request_and_the_facts_it_caused_are_one_transaction(tmp_path: Path, monkeypatch: Any) -> None:
    """A kill -9 between two commits must never keep the (acknowledged) request without the
    decision and session it caused: even with one queue item per transaction, they are one."""
    monkeypatch.setattr(service, "WRITE_WAIT_S", 0.0)
    monkeypatch.setattr(service, "WRITE_BATCH_MAX", 1)
    gw, rec = make_gateway(tmp_path)
    writes: list[list[tuple[str, str]]] = []
    real = Spool.write

    def write(self: Spool, events: list, *a: Any, **kw: Any) -> int:
        writes.append([(e[0], e[3]) for e in events])
        return real(self, events, *a, **kw)

    monkeypatch.setattr(Spool, "write", write)
    badge = json.dumps({"v": 1, "node": NODE, "boot": 1, "seq": 1, "up": 1000, "uid": "04A1B2C3"}).encode()
    gw._on_message(None, None, Msg("crp/v1/DKR/bandsaw-1/badge", badge, 1))
    writer = run_writer(gw)
    wait_for(lambda: rec.acks)
    gw.stop_event.set()
    writer.join(30)
    with_badge = [w for w in writes if (NODE, "badge") in w]
    assert len(with_badge) == 1, writes
    assert (gw.id, "decision") in with_badge[0], with_badge
    assert rec.acks == [(1, 1)] and rec.violations == []
    gw.spool.close()


def test_multi_row_inserts_keep_order_and_count_duplicates(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db")
    for n in (1, 2, 511, 512, 513, 1000, 2000):
        src = f"n{n}"
        rows = [(src, 1, i, "current", "m-1" if i % 2 else None, 10 * i, '{"amps":1.0}', None if i % 3 else -i, i)
                for i in range(n, 0, -1)]  # descending seq: order must follow the list, not the key
        dup = rows[: n // 3]
        assert sp.write(rows + dup, [], [], {}) == n
        got = sp.db.execute("SELECT source, boot, seq, kind, machine, t, body, skew_ms, received_ms FROM spool"
                            " WHERE source = ? ORDER BY id", (src,)).fetchall()
        assert got == rows
    assert sp.counters()["duplicate"] == sum(n // 3 for n in (1, 2, 511, 512, 513, 1000, 2000))
    sp.close()
