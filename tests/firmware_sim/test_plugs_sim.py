"""Simulated metering plugs through a real Mosquitto: each firmware's own topics and payloads
(checked by the gateway's converters), commands obeyed, power drawn while the motor runs, the
Last Will on a power cut, and the energy counter after it (Shelly restarts at zero, Tasmota
keeps its saved total)."""

from __future__ import annotations

import secrets
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from crp_cli.broker import Broker, BrokerUser, find_mosquitto
from crp_common.clock import ScaledClock
from firmware_sim.plugs import LOAD_W, PlugSimError, make_plug
from gateway.plugs.commands import relay_command
from gateway.plugs.converters import convert
from gateway.plugs.mapping import plugs_from_data
from gateway.plugs.topics import Router

from tests.conftest import need_service

WAIT_S = 10.0
SPEED = 60.0
CFG = plugs_from_data({"plugs": {
    "plug-t": {"machine": "m-t", "type": "tasmota", "topic": "tasmota_5A9AE8", "threshold_w": 100},
    "plug-s1": {"machine": "m-s1", "type": "shelly1", "topic": "shellyplug-s-7C87CEB4A2F1", "threshold_w": 100},
    "plug-s2": {"machine": "m-s2", "type": "shelly2", "topic": "shellyplusplugs-a8032ab12345", "threshold_w": 100},
}})
ROUTER = Router(CFG)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")
    users = [BrokerUser("plugs", secrets.token_urlsafe(12), ["topic readwrite #"]),
             BrokerUser("ctl", secrets.token_urlsafe(12), ["topic readwrite #"])]
    b = Broker(tmp_path_factory.mktemp("plug-broker"), users=users).start()
    yield b, {u.username: u for u in users}
    b.stop()


class Observer:
    def __init__(self, host: str, port: int, user: BrokerUser):
        self.msgs: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        self.ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"obs-{uuid.uuid4().hex[:6]}",
                        protocol=mqtt.MQTTv311)
        c.username_pw_set(user.username, user.password)
        c.on_connect = lambda cl, *_: cl.subscribe("#", qos=1)
        c.on_subscribe = lambda *_: self.ready.set()
        c.on_message = self._on
        c.connect(host, port)
        c.loop_start()
        self.client = c
        assert self.ready.wait(WAIT_S)

    def _on(self, _c, _u, m: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.msgs.append((m.topic, bytes(m.payload), bool(m.retain)))
            self.cond.notify_all()

    def wait(self, pred, what: str) -> tuple[str, bytes, bool]:
        deadline = time.monotonic() + WAIT_S
        with self.cond:
            while True:
                for m in self.msgs:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"never seen: {what}; got {[t for t, _, _ in self.msgs][-10:]}")
                self.cond.wait(left)

    def readings(self):
        """Everything seen so far, through the gateway's converters (Gen2 status overlaid)."""
        last, out = None, []
        with self.cond:
            msgs = list(self.msgs)
        for t, p, _ in msgs:
            route = ROUTER.route(t)
            if route is None or route.rest in ("rpc", "relay/0/command") or route.rest.startswith("cmnd/"):
                continue  # commands to the plug, not the plug's reports
            last_new, rs = convert(route, p, last if route.spec.type == "shelly2" else None)
            if route.spec.type == "shelly2":
                last = last_new
            out += rs
        return out

    def clear(self) -> None:
        with self.cond:
            self.msgs.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("pid", ["plug-t", "plug-s1", "plug-s2"])
def test_plug_speaks_its_firmware_obeys_commands_and_meters(broker, pid):
    b, users = broker
    spec = CFG.plugs[pid]
    clock = ScaledClock(real_origin=time.time(), sim_origin=1_772_438_400.0, speed=SPEED)
    obs = Observer(b.host, b.port, users["ctl"])
    plug = make_plug(str(spec.type), spec.topic, b.host, b.port, "plugs", users["plugs"].password, clock,
                     client_id=pid, report_period_s=None)
    try:
        plug.power_on()
        online = obs.wait(lambda m: ROUTER.route(m[0]) is not None and ROUTER.route(m[0]).rest in ("tele/LWT", "online"),
                          "online message")
        assert online[2] is True or online[1] in (b"Online", b"true")
        assert plug.motor(True) is False  # no power without the relay
        topic, payload, qos = relay_command(CFG, spec, True, rpc_id=1, src="crp-test")
        obs.client.publish(topic, payload, qos=qos)
        deadline = time.monotonic() + WAIT_S
        while not plug.relay and time.monotonic() < deadline:
            time.sleep(0.01)
        assert plug.relay and plug.commands == [True]
        assert plug.motor(True)
        time.sleep(1.0)  # a simulated minute of work at x60
        assert plug.motor(False)
        deadline = time.monotonic() + WAIT_S
        while True:  # until the stop is reported
            rs = obs.readings()
            powers = [r.power_w for r in rs if r.power_w is not None]
            n_energy = sum(r.energy_wh is not None for r in rs)
            # Three reports: at the relay command, at the motor start, at the motor stop.
            if (powers and powers[-1] < 100 and LOAD_W in powers and n_energy >= 3) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert any(r.relay is True for r in rs)
        assert LOAD_W in powers and powers[-1] < 100, powers
        energies = [r.energy_wh for r in rs if r.energy_wh is not None]
        assert energies == sorted(energies) and energies[-1] > energies[0]
        used = energies[-1] - energies[0]
        assert 0.5 * LOAD_W / 60 < used < 2 * LOAD_W / 60  # about a minute at LOAD_W
        before_cut = plug.energy_wh
        obs.clear()
        plug.power_cut()
        will = obs.wait(lambda m: m[1] in (b"Offline", b"false"), "Last Will")
        assert ROUTER.route(will[0]) is not None
        if spec.type == "tasmota":
            assert plug.energy_wh == pytest.approx(before_cut, abs=0.01)  # saved at its last report
        else:
            assert plug.energy_wh == 0.0  # Shelly counters restart at power-up
    finally:
        plug.shutdown()
        obs.close()


def test_unknown_plug_type_is_refused():
    with pytest.raises(PlugSimError, match="unknown plug type"):
        make_plug("zigbee", "x", "127.0.0.1", 1, None, None, ScaledClock(0, 0, 1))
