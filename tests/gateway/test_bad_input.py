"""Bad input into the gateway: 10,000 generated MQTT topics and payloads (invalid UTF-8, huge
payloads, wrong types, clock jumps, sequence resets, replays) through the gateway's real message
handler and spool. Nothing crashes, and every message is accounted for: stored once, counted as
a duplicate or replay, or dead-lettered with its reason."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from hypothesis import HealthCheck, given, settings, strategies as st

from crp_common.clock import ScaledClock
from gateway.service import Gateway
from gateway.settings import GatewaySettings

T0 = 1_790_000_000.0
NODES = ["node-bandsaw-1", "node-planer-1", "n-x"]
MACHINES = ["bandsaw-1", "planer-1", "ghost"]
KINDS = ["status", "hb", "badge", "relay", "motor", "current", "temp", "vib", "fault", "energy", "smell", "decision"]

valid_topic = st.builds(lambda m, k: f"crp/v1/DKR/{m}/{k}", st.sampled_from(MACHINES), st.sampled_from(KINDS))
junk_topic = st.one_of(
    st.text(max_size=80).filter(lambda t: "\x00" not in t),
    st.builds(lambda s, m, k: f"crp/v1/{s}/{m}/{k}", st.text(max_size=10), st.text(max_size=10),
              st.text(max_size=10)),
)
scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**64, max_value=2**64),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
field_values = {
    "v": st.one_of(st.just(1), scalar),
    "node": st.one_of(st.sampled_from(NODES), scalar),
    "boot": st.one_of(st.integers(min_value=0, max_value=3), scalar),
    # small seqs so duplicates, replays and resets happen often
    "seq": st.one_of(st.integers(min_value=0, max_value=40), scalar),
    # uptime jumps back and forth (clock jumps), sometimes absurdly far
    "up": st.one_of(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=2**60), scalar),
    "ts": st.one_of(st.floats(min_value=0, max_value=1e10), scalar),
    "uid": st.one_of(st.sampled_from(["04A1B2C3", "04a1b2c3d4e5f6", "XYZ", ""]), scalar),
    "state": st.one_of(st.sampled_from(["online", "offline"]), scalar),
    "relay": scalar, "motor": scalar, "running": scalar, "on": scalar,
    "amps": st.one_of(st.floats(min_value=0, max_value=2000), scalar),
    "c": st.one_of(st.floats(min_value=-100, max_value=300), scalar),
    "rms": scalar, "code": st.one_of(st.sampled_from(["estop", "thermal", "bogus"]), scalar),
    "active": scalar, "wh": scalar, "extra": scalar,
}
json_payload = st.fixed_dictionaries({}, optional=field_values).map(lambda d: json.dumps(d).encode())
payload = st.one_of(
    json_payload,
    json_payload,
    st.binary(max_size=200),  # invalid UTF-8 and random bytes
    st.builds(lambda n: b"{" + b'"a":' * n, st.integers(min_value=0, max_value=50)),
    st.integers(min_value=4000, max_value=70_000).map(lambda n: b'{"v":1,"pad":"' + b"x" * n + b'"}'),  # huge
    st.recursive(scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                 max_leaves=10).map(lambda v: json.dumps(v, default=str).encode()),
)


class FakeMessage(mqtt.MQTTMessage):
    def __init__(self, topic: str, body: bytes, mid: int):
        super().__init__(mid=mid, topic=topic.encode("utf-8", "surrogatepass"))
        self.payload = body
        self.qos = 1


def make_gateway(tmp: Path) -> Gateway:
    s = GatewaySettings(_env_file=None, data_dir=tmp, demo_mode=True, mqtt_port=1, server_url="http://127.0.0.1:1")
    return Gateway(s, clock=ScaledClock(real_origin=0.0, sim_origin=T0, speed=1.0))


def test_ten_thousand_generated_messages(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    writer = threading.Thread(target=gw._writer, daemon=True)
    writer.start()
    fed = 0

    @settings(max_examples=10_000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(valid_topic, valid_topic, junk_topic), payload)
    def feed(topic: str, body: bytes) -> None:
        nonlocal fed
        fed += 1
        gw._on_message(None, None, FakeMessage(topic, body, fed))

    feed()
    gw.stop_event.set()
    writer.join(60)
    assert not writer.is_alive()
    assert fed >= 10_000
    counters = gw.spool.counters()
    dead = gw.spool.dead_letter_counts()
    stored = gw.spool.db.execute("SELECT COUNT(*) FROM spool WHERE source != ?", (gw.id,)).fetchone()[0]
    not_stored = counters.get("duplicate", 0) + counters.get("replay", 0) + counters.get("system_topic", 0)
    assert stored + not_stored + sum(dead.values()) == fed, (stored, counters, dead)
    assert dead and all(reason for reason in dead)
    assert "internal_error" not in dead  # no crash turned into a dead letter either
    # Every dead letter keeps the raw payload and a readable reason.
    for d in gw.spool.dead_letters(limit=50):
        assert d["reason"] and d["topic"] is not None
    gw.spool.close()


def test_forwarded_batch_is_valid_json_with_the_stored_bodies(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    rows = [(1, "node-a", 2, 3, "temp", "bandsaw-1", 1_790_000_000_000, '{"c":31.5}', None),
            (2, "gw-dkr-1", 1, 9, "state", None, 1_790_000_000_100, '{"state":"in_use","cause":"bé\\"x"}', -42)]
    batch = json.loads(gw._batch_json(rows))
    assert batch["gateway"] == gw.id and batch["site"] == "DKR"
    assert batch["events"] == [
        {"source": "node-a", "boot": 2, "seq": 3, "kind": "temp", "site": "DKR", "machine": "bandsaw-1",
         "t": 1_790_000_000_000, "body": {"c": 31.5}},
        {"source": "gw-dkr-1", "boot": 1, "seq": 9, "kind": "state", "site": "DKR", "machine": None,
         "t": 1_790_000_000_100, "body": {"state": "in_use", "cause": 'bé"x'}, "skew_ms": -42},
    ]
    gw.spool.close()
