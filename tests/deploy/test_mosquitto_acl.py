"""The docker-compose stack's ACL file (deploy/mosquitto/acl) loaded by a real Mosquitto: the
gateway reads the metering plugs' reports and commands them; the simulator cannot touch the
plug topics. Passwords are throw-away ones (the stack's come from .env)."""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from crp_cli.broker import find_mosquitto, find_mosquitto_passwd, free_port, render_conf, wait_listening

from tests.conftest import need_service

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 10.0
USERS = ("gateway", "simulator", "health")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    exe, tool = find_mosquitto(), find_mosquitto_passwd()
    if exe is None or tool is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")
    d = tmp_path_factory.mktemp("compose-acl")
    creds = {u: secrets.token_urlsafe(12) for u in USERS}
    passwd = d / "passwd"
    passwd.write_text("")
    for u, pw in creds.items():
        subprocess.run([tool, "-b", str(passwd), u, pw], check=True, capture_output=True)
    (d / "data").mkdir()
    port = free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(render_conf(port, d / "data", passwd, ROOT / "deploy" / "mosquitto" / "acl"))
    log = d / "broker.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=fh, stderr=fh, start_new_session=True)
    try:
        wait_listening("127.0.0.1", port, WAIT_S, proc, "mosquitto", log)
        yield port, creds
    finally:
        proc.terminate()
        proc.wait(5)


def connect(port: int, user: str, pw: str, subs: tuple[str, ...], msgs: list) -> mqtt.Client:
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv311)
    c.username_pw_set(user, pw)
    c.on_connect = lambda cl, *_: cl.subscribe([(s, 1) for s in subs])
    c.on_subscribe = lambda *_: ready.set()
    c.on_message = lambda _c, _u, m: msgs.append((m.topic, bytes(m.payload)))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(WAIT_S)
    return c


def wait_for(msgs: list, item: tuple[str, bytes]) -> None:
    deadline = time.monotonic() + WAIT_S
    while item not in msgs:
        assert time.monotonic() < deadline, f"{item} never delivered; got {msgs[-5:]}"
        time.sleep(0.01)


def test_gateway_reads_and_commands_plugs_and_the_simulator_cannot(broker):
    port, creds = broker
    gw_msgs: list = []
    sim_msgs: list = []
    gw = connect(port, "gateway", creds["gateway"], ("tele/#", "stat/#", "shellies/#", "cmnd/#"), gw_msgs)
    sim = connect(port, "simulator", creds["simulator"], ("crp/v1/DKR/+/+", "cmnd/#", "tele/#"), sim_msgs)
    try:
        # The gateway hears a plug report and its own command (readwrite on the plug families).
        for topic in ("tele/tasmota_3C71BF/SENSOR", "shellies/shelly1pm-84CCA8A11B22/relay/0/power"):
            gw.publish(topic, b"42", qos=1).wait_for_publish(WAIT_S)
            wait_for(gw_msgs, (topic, b"42"))
        # The simulator user cannot command a plug, nor read the plugs' topics.
        sim.publish("cmnd/tasmota_3C71BF/POWER", b"ON", qos=1).wait_for_publish(WAIT_S)
        sim.publish("crp/v1/DKR/bandsaw-1/hb", b"marker", qos=1).wait_for_publish(WAIT_S)
        wait_for(sim_msgs, ("crp/v1/DKR/bandsaw-1/hb", b"marker"))
        gw.publish("cmnd/tasmota_3C71BF/POWER", b"OFF", qos=1).wait_for_publish(WAIT_S)
        wait_for(gw_msgs, ("cmnd/tasmota_3C71BF/POWER", b"OFF"))
        assert ("cmnd/tasmota_3C71BF/POWER", b"ON") not in gw_msgs  # refused before the gateway's OFF
        assert not [m for m in sim_msgs if not m[0].startswith("crp/v1/")]
    finally:
        for c in (gw, sim):
            c.disconnect()
            c.loop_stop()
