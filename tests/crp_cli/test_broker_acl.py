"""The stack's broker ACLs for metering plugs, against a real Mosquitto: each plug has a user of
its own that may publish its reports and read its commands and nothing else; the gateway reads
and commands every plug.

A refusal is shown without waiting: after the forbidden message the same client publishes an
allowed marker (QoS 1 keeps the order), and once the marker is in the forbidden one is not."""

from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from crp_cli.broker import find_mosquitto
from crp_common.plug_acl import gateway_plug_acl, plug_acl
from crp_cli.stack import Stack, StackError

from tests.conftest import need_service

WAIT_S = 10.0
GW = "gw-acl"
GEN2 = "shellyplusplugs-a8032ab12345"
PLUGS = {"plug-t": ("tasmota", "tasmota_5A9AE8"), "plug-s1": ("shelly1", "shelly1pm-84CCA8A11B22"),
         "plug-s2": ("shelly2", GEN2)}


class Client:
    def __init__(self, stack: Stack, who: str, subs: tuple[str, ...] = ()):
        self.msgs: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{who}-{uuid.uuid4().hex[:6]}",
                             protocol=mqtt.MQTTv311)
        self.c.username_pw_set(*stack.mqtt_creds(who))
        self.c.on_connect = lambda cl, *_: (cl.subscribe([(s, 1) for s in subs]) if subs else ready.set())
        self.c.on_subscribe = lambda *_: ready.set()
        self.c.on_message = self._on
        self.c.connect(stack.broker.host, stack.broker.port)
        self.c.loop_start()
        assert ready.wait(WAIT_S), f"{who} could not connect"

    def _on(self, _c, _u, m) -> None:
        with self.cond:
            self.msgs.append((m.topic, bytes(m.payload)))
            self.cond.notify_all()

    def pub(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)

    def wait(self, topic: str, payload: bytes) -> None:
        deadline = time.monotonic() + WAIT_S
        with self.cond:
            while (topic, payload) not in self.msgs:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{topic} {payload!r} never delivered; got {self.msgs[-5:]}")
                self.cond.wait(left)

    def got(self, topic: str) -> bool:
        with self.cond:
            return any(t == topic for t, _ in self.msgs)

    def close(self) -> None:
        self.c.disconnect()  # first: a stopped loop would wait out its 1 s select
        self.c.loop_stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")
    s = Stack(tmp_path_factory.mktemp("acl"), "sqlite://", site="DKR", gateway_id=GW)
    for pid, (kind, topic) in PLUGS.items():
        s.add_plug(pid, kind, topic)
    s.start_broker()
    yield s
    s.stop()


@pytest.fixture
def clients(stack):
    made: list[Client] = []

    def make(who: str, *subs: str) -> Client:
        c = Client(stack, who, subs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_plugs_publish_their_reports_and_the_gateway_reads_them(clients):
    gw = clients("gateway", "tele/#", "stat/#", "shellies/#", f"{GEN2}/#", f"crp-{GW}/rpc")
    t, s1, s2 = clients("plug-t"), clients("plug-s1"), clients("plug-s2")
    for c, topic in ((t, "tele/tasmota_5A9AE8/SENSOR"), (t, "tele/tasmota_5A9AE8/LWT"),
                     (t, "stat/tasmota_5A9AE8/POWER"),
                     (s1, "shellies/shelly1pm-84CCA8A11B22/relay/0/power"), (s2, f"{GEN2}/status/switch:0"),
                     (s2, f"{GEN2}/events/rpc"), (s2, f"{GEN2}/online"), (s2, f"crp-{GW}/rpc")):
        c.pub(topic, b"1")
        gw.wait(topic, b"1")


def test_the_gateway_commands_each_plug(clients):
    t = clients("plug-t", "cmnd/tasmota_5A9AE8/POWER")
    s1 = clients("plug-s1", "shellies/shelly1pm-84CCA8A11B22/relay/0/command")
    s2 = clients("plug-s2", f"{GEN2}/rpc")
    gw = clients("gateway")
    for c, topic in ((t, "cmnd/tasmota_5A9AE8/POWER"), (s1, "shellies/shelly1pm-84CCA8A11B22/relay/0/command"),
                     (s2, f"{GEN2}/rpc")):
        gw.pub(topic, b"ON")
        c.wait(topic, b"ON")


def test_a_plug_cannot_speak_for_a_node_or_another_plug(clients):
    gw = clients("gateway", "crp/v1/#", "tele/#", "stat/#", "cmnd/#", "shellies/#", f"{GEN2}/#")
    t = clients("plug-t")
    for forbidden in ("crp/v1/DKR/bandsaw-1/badge", "crp/v1/DKR/bandsaw-1/status", "tele/tasmota_OTHER/SENSOR",
                      "shellies/shelly1pm-84CCA8A11B22/relay/0/power", f"{GEN2}/status/switch:0",
                      "cmnd/tasmota_5A9AE8/POWER"):
        t.pub(forbidden, b"x")
        t.pub("tele/tasmota_5A9AE8/STATE", forbidden.encode())  # the marker, allowed
        gw.wait("tele/tasmota_5A9AE8/STATE", forbidden.encode())
        assert not gw.got(forbidden), forbidden


def test_a_plug_reads_only_its_own_commands(clients):
    t = clients("plug-t", "cmnd/#", "crp/v1/#", "shellies/#")
    gw = clients("gateway")
    probe = clients("plug-t", "cmnd/tasmota_5A9AE8/POWER")
    for topic in ("cmnd/tasmota_OTHER/POWER", "crp/v1/DKR/bandsaw-1/decision",
                  "shellies/shelly1pm-84CCA8A11B22/relay/0/command"):
        gw.pub(topic, b"ON")
    gw.pub("cmnd/tasmota_5A9AE8/POWER", b"marker")
    probe.wait("cmnd/tasmota_5A9AE8/POWER", b"marker")
    t.wait("cmnd/tasmota_5A9AE8/POWER", b"marker")  # its own commands still reach it through cmnd/#
    assert [m for m in t.msgs if m[1] == b"ON"] == []


def test_the_simulated_nodes_cannot_command_plugs(clients):
    probe = clients("plug-t", "cmnd/tasmota_5A9AE8/POWER")
    sim = clients("sim")
    gw = clients("gateway")
    sim.pub("cmnd/tasmota_5A9AE8/POWER", b"ON")
    sim.c.publish("crp/v1/DKR/x/hb", b"", qos=1).wait_for_publish(WAIT_S)
    gw.pub("cmnd/tasmota_5A9AE8/POWER", b"marker")
    probe.wait("cmnd/tasmota_5A9AE8/POWER", b"marker")
    assert (("cmnd/tasmota_5A9AE8/POWER", b"ON")) not in probe.msgs


def test_acl_lines():
    assert plug_acl("tasmota", "t1") == ["topic write tele/t1/#", "topic write stat/t1/#", "topic read cmnd/t1/#"]
    assert plug_acl("tasmota", "t1", full_topic="%topic%/%prefix%/") == [
        "topic write t1/tele/#", "topic write t1/stat/#", "topic read t1/cmnd/#"]
    assert "topic write crp-gw/rpc" in plug_acl("shelly2", "a/b", gateway_id="gw")
    assert not any("crp/v1" in line or line.endswith(" #") for k in ("tasmota", "shelly1", "shelly2")
                   for line in plug_acl(k, "x", "gw"))
    assert gateway_plug_acl(["p2"], "gw")[-2:] == ["topic readwrite p2/#", "topic read crp-gw/rpc"]
    with pytest.raises(ValueError):
        plug_acl("tasmota", "+")
    with pytest.raises(ValueError):
        plug_acl("zigbee", "x")


def test_a_plug_user_is_added_once(tmp_path):
    s = Stack(tmp_path, "sqlite://")
    s.add_plug("plug-a", "shelly2", "pfx")
    assert "topic readwrite pfx/#" in s.users["gateway"].acl and s.users["plug-a"] in s.broker.users
    with pytest.raises(StackError):
        s.add_plug("plug-a", "tasmota", "t")
