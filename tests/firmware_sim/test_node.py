"""MachineNode against a private Mosquitto: Last Will, boots, seq, decisions and commands."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest

from crp_common import contract
from crp_common.clock import ScaledClock
from crp_common.contract import CommandMsg, DecisionMsg
from firmware_sim.node import MachineNode

pytestmark = pytest.mark.mqtt
T0 = 1_750_000_000.0
SITE = "DKR"
WAIT_S = 10.0


def make_node(mosquitto, tmp_path, uniq, skew: float | None = 0.0, name: str = "bandsaw") -> MachineNode:
    clock = ScaledClock(real_origin=time.time(), sim_origin=T0, speed=100.0)
    machine = f"{name}-{uniq}"
    user, pw = mosquitto.creds("sim")
    return MachineNode(SITE, machine, f"node-{machine}", mosquitto.host, mosquitto.port, user, pw, clock,
                       tmp_path / "flash", clock_skew_s=skew)


def publish_down(mosquitto, machine: str, kind: str, msg) -> None:
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.username_pw_set(*mosquitto.creds("gateway"))
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    c.publish(contract.topic(SITE, machine, kind), contract.encode(msg), qos=1).wait_for_publish(WAIT_S)
    c.disconnect()
    c.loop_stop()


def retained_status(make_recorder, machine: str) -> tuple[dict, bool]:
    """What a subscriber arriving now gets on the node's status topic."""
    rec = make_recorder(contract.topic(SITE, machine, "status"))
    _, data, retained = rec.wait_for(lambda t, d, r: True)
    return data, retained


def node_msgs(recorder, machine: str) -> list[tuple[str, dict]]:
    prefix = contract.topic(SITE, machine, "")
    return [(t.rsplit("/", 1)[1], json.loads(p)) for t, p, _ in recorder.raw() if t.startswith(prefix)]


def test_power_cut_leaves_a_retained_offline_will_and_restore_is_a_new_boot(mosquitto, tmp_path, uniq,
                                                                           make_recorder):
    node = make_node(mosquitto, tmp_path, uniq)
    node.power_on()
    try:
        data, retained = retained_status(make_recorder, node.machine)
        assert retained and data["state"] == "online" and data["seq"] == 1 and data["boot"] == 1
        assert data["fw"] == node.fw

        node.power_cut()
        data, retained = retained_status(make_recorder, node.machine)
        assert retained
        assert data == {"v": 1, "node": node.node_id, "boot": 1, "seq": 0, "state": "offline"}

        node.power_restore()
        data, retained = retained_status(make_recorder, node.machine)
        assert retained and data["state"] == "online" and data["boot"] == 2 and data["seq"] == 1
    finally:
        node.power_cut()


def test_nothing_is_sent_after_a_power_cut(mosquitto, tmp_path, uniq, recorder):
    node = make_node(mosquitto, tmp_path, uniq)
    node.power_on()
    node.heartbeat()
    node.power_cut()
    assert node.heartbeat() is None and node.tap("04A1B2C3") is None and node.temperature(30.0) is None
    recorder.wait_for(lambda t, d, r: t.endswith(f"{node.machine}/status") and d["state"] == "offline")
    kinds = [k for k, _ in node_msgs(recorder, node.machine)]
    assert kinds == ["status", "hb", "status"]


def test_seq_counts_up_within_a_boot_and_restarts_at_the_next(mosquitto, tmp_path, uniq, recorder):
    node = make_node(mosquitto, tmp_path, uniq)
    node.power_on()
    try:
        for i in range(5):
            node.heartbeat()
            node.temperature(30.0 + i)
        node.power_cut()
        node.power_restore()
        node.heartbeat()
        node.current(3.2)
        recorder.wait_for(lambda t, d, r: t.endswith(f"{node.machine}/current"))
        msgs = [d for _, d in node_msgs(recorder, node.machine)]
        boot1 = [d["seq"] for d in msgs if d["boot"] == 1]
        boot2 = [d["seq"] for d in msgs if d["boot"] == 2]
        assert boot1 == list(range(1, 12)) + [0]  # status, 10 samples, then the Will
        assert boot2 == [1, 2, 3]
    finally:
        node.power_cut()


def test_boot_counter_survives_in_flash(mosquitto, tmp_path, uniq):
    node = make_node(mosquitto, tmp_path, uniq)
    node.power_on()
    node.power_cut()
    node.power_on()
    node.power_cut()
    again = make_node(mosquitto, tmp_path, uniq)  # same state dir: the same board
    again.power_on()
    try:
        assert again.boot == 3
        assert json.loads((tmp_path / "flash" / f"{again.node_id}.json").read_text())["boot"] == 3
    finally:
        again.power_cut()


def test_every_payload_follows_the_contract(mosquitto, tmp_path, uniq, recorder):
    node = make_node(mosquitto, tmp_path, uniq)
    node.power_on()
    try:
        req = node.tap("04:a1:b2:c3")
        publish_down(mosquitto, node.machine, "decision",
                     DecisionMsg(boot=node.boot, req=req, result="grant", artisan="1", text="Bonjour"))
        assert node.wait_decision(req, WAIT_S) is not None
        node.motor(True, 6.4)
        node.current(6.1)
        node.temperature(41.5)
        node.vibration(2.2)
        node.heartbeat()
        node.fault("thermal", True)
        node.fault("thermal", False)
        node.report_relay()
    finally:
        node.power_cut()
    recorder.wait_for(lambda t, d, r: t.endswith(f"{node.machine}/status") and d["state"] == "offline")
    raw = [(t, p) for t, p, _ in recorder.raw() if f"/{node.machine}/" in t and not t.endswith("/decision")]
    kinds = set()
    for t, p in raw:
        _, machine, kind, msg = contract.decode_uplink(t, p)
        assert machine == node.machine and msg.node == node.node_id
        kinds.add(kind)
    assert kinds == {"status", "badge", "relay", "motor", "current", "temp", "vib", "hb", "fault"}


def test_tap_waits_for_the_decision_and_grant_then_end_drive_the_relay(mosquitto, tmp_path, uniq, recorder):
    node = make_node(mosquitto, tmp_path, uniq)
    node.power_on()
    try:
        at = node.boot_at + 12.345
        req = node.tap("04A1B2C3", at=at)
        _, badge, _ = recorder.wait_for(lambda t, d, r: t.endswith(f"{node.machine}/badge"))
        assert badge["seq"] == req and badge["up"] == 12345 and badge["uid"] == "04A1B2C3"
        assert node.wait_decision(req, 0.2) is None  # no answer yet
        publish_down(mosquitto, node.machine, "decision",
                     DecisionMsg(boot=node.boot, req=req, result="grant", artisan="1", text="Bonjour Awa"))
        d = node.wait_decision(req, WAIT_S)
        assert d is not None and d.result == "grant" and node.relay
        _, relay, _ = recorder.wait_for(lambda t, d, r: t.endswith(f"{node.machine}/relay"))
        assert relay["on"] is True and relay["up"] == 12345  # switched for the tap at its time

        assert node.motor(True, 6.4, at=at + 60)
        req2 = node.tap("04A1B2C3", at=at + 600)
        publish_down(mosquitto, node.machine, "decision",
                     DecisionMsg(boot=node.boot, req=req2, result="end", reason="tap_out"))
        assert node.wait_decision(req2, WAIT_S).result == "end"
        assert not node.relay and not node.motor_running
        recorder.wait_for(lambda t, d, r: t.endswith(f"{node.machine}/motor") and d["running"] is False)
        relays = [d["on"] for d in recorder.of(node.machine, "relay")]
        assert relays == [True, False]
    finally:
        node.power_cut()


def test_decisions_for_another_boot_or_request_are_ignored(mosquitto, tmp_path, uniq):
    node = make_node(mosquitto, tmp_path, uniq)
    node.power_on()
    try:
        req = node.tap("04A1B2C3")
        publish_down(mosquitto, node.machine, "decision",
                     DecisionMsg(boot=node.boot + 7, req=req, result="grant"))
        publish_down(mosquitto, node.machine, "decision",
                     DecisionMsg(boot=node.boot, req=req + 50, result="grant"))
        publish_down(mosquitto, node.machine, "decision",
                     DecisionMsg(boot=node.boot, req=req, result="deny", reason="unknown_badge"))
        d = node.wait_decision(req, WAIT_S)
        assert d.result == "deny" and d.reason == "unknown_badge"
        assert not node.relay
    finally:
        node.power_cut()


def test_relay_off_command_stops_the_motor_and_motor_needs_the_relay(mosquitto, tmp_path, uniq, recorder):
    node = make_node(mosquitto, tmp_path, uniq)
    node.power_on()
    try:
        assert not node.motor(True, 5.0)  # no power to the motor without the relay
        req = node.tap("04A1B2C3")
        publish_down(mosquitto, node.machine, "decision", DecisionMsg(boot=node.boot, req=req, result="grant"))
        node.wait_decision(req, WAIT_S)
        assert node.motor(True, 5.0)
        publish_down(mosquitto, node.machine, "cmd", CommandMsg(id="idle-1", cmd="relay_off", reason="idle"))
        recorder.wait_for(lambda t, d, r: t.endswith(f"{node.machine}/motor") and d["running"] is False)
        assert not node.relay and not node.motor_running
        assert [c.id for c in node.commands] == ["idle-1"]
        motors = [d["running"] for d in recorder.of(node.machine, "motor")]
        assert motors == [True, False]
    finally:
        node.power_cut()


def test_garbage_downlink_is_counted_not_fatal(mosquitto, tmp_path, uniq):
    node = make_node(mosquitto, tmp_path, uniq)
    node.power_on()
    try:
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        c.username_pw_set(*mosquitto.creds("gateway"))
        c.connect(mosquitto.host, mosquitto.port)
        c.loop_start()
        c.publish(contract.topic(SITE, node.machine, "decision"), b"{not json", qos=1).wait_for_publish(WAIT_S)
        c.disconnect()
        c.loop_stop()
        req = node.tap("04A1B2C3")
        publish_down(mosquitto, node.machine, "decision", DecisionMsg(boot=node.boot, req=req, result="grant"))
        assert node.wait_decision(req, WAIT_S).result == "grant"
        assert node.bad_downlinks == 1
    finally:
        node.power_cut()


def test_wall_clock_field_carries_the_node_skew(mosquitto, tmp_path, uniq, recorder):
    skewed = make_node(mosquitto, tmp_path, uniq, skew=-189_216_000.0, name="mill")
    clockless = make_node(mosquitto, tmp_path, uniq, skew=None, name="lathe")
    skewed.power_on()
    clockless.power_on()
    try:
        at = skewed.boot_at + 30
        skewed.heartbeat(at)
        clockless.heartbeat(at)
        _, hb, _ = recorder.wait_for(lambda t, d, r: t.endswith(f"{skewed.machine}/hb"))
        assert hb["ts"] == pytest.approx(at - 189_216_000.0, abs=0.001)
        _, hb2, _ = recorder.wait_for(lambda t, d, r: t.endswith(f"{clockless.machine}/hb"))
        assert "ts" not in hb2
    finally:
        skewed.power_cut()
        clockless.power_cut()


def test_a_reconnection_reports_the_latest_uptime_so_planned_messages_keep_their_times(mosquitto, tmp_path,
                                                                                       uniq, recorder):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    node = make_node(mosquitto, tmp_path, uniq)
    node.power_on()
    try:
        b = node.boot_at
        while node.clock.now() < b + 30:  # the player lags: "now" runs ahead of the planned times
            time.sleep(0.01)
        node.heartbeat(at=b + 10)
        # The broker came back: paho calls on_connect again within the same boot.
        node._on_connect(node._client, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), None)
        node.heartbeat(at=b + 12)
        recorder.wait_for(lambda t, d, r: t.endswith(f"{node.machine}/hb") and d["up"] == 12_000)
        ups = [(k, d["up"]) for k, d in node_msgs(recorder, node.machine)]
        assert ups[1:] == [("hb", 10_000), ("status", 10_000), ("hb", 12_000)], ups
        assert ups[0][0] == "status" and ups[0][1] < 10_000  # the first connection: the true uptime
    finally:
        node.power_cut()
