"""run_scenario with machines on metering plugs, against a private Mosquitto whose ACLs give
each plug a user of its own (crp_common.plug_acl). The test plays the gateway: it answers
the readers' badges and switches the plugs with the gateway's own command encoder."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from crp_cli.broker import Broker, BrokerUser, find_mosquitto
from crp_common.plug_acl import gateway_plug_acl, plug_acl
from crp_common import contract
from crp_common.clock import ScaledClock
from crp_common.contract import DecisionMsg
from firmware_sim import runner
from firmware_sim.scenario import Op, script
from firmware_sim.workshop import workshop_from_dict
from gateway.plugs.commands import relay_command
from gateway.plugs.converters import convert
from gateway.plugs.mapping import plugs_from_data
from gateway.plugs.topics import Router

from tests.conftest import need_service

pytestmark = pytest.mark.mqtt
SITE = "DKR"
T0 = 1_772_438_400.0  # 2026-03-02 08:00 UTC
SPEED = 300.0
WAIT_S = 10.0
UID = "04A1B2C3"
GEN2 = "shellyplusplugs-a8032ab12345"
# machine, plug type, device topic, load W
PLUGGED = [("saw-t", "tasmota", "tasmota_5A9AE8", 1200.0), ("grinder-s1", "shelly1", "shelly1pm-84CCA8A11B22", 400.0),
           ("overlock-s2", "shelly2", GEN2, 550.0)]
CYCLES = [[120, 60], [200, 0]]  # 320 s of motor run


def workshop():
    machines = [{"id": "lathe-n", "node": "node-lathe-n", "type": "lathe", "clock_skew_s": 0}]
    for mid, kind, topic, load in PLUGGED:
        machines.append({"id": mid, "node": f"plug-{mid}", "type": "lathe", "clock_skew_s": None,
                         "plug": {"type": kind, "topic": topic, "reader": f"reader-{mid}", "threshold_w": 100,
                                  "load_w": load, "idle_w": 3}})
    return workshop_from_dict({
        "site": {"code": SITE, "name": "Test", "tz": "Africa/Dakar", "currency": "XOF"},
        "machine_types": [{"code": "lathe", "name_fr": "Tour", "name_en": "Lathe", "idle_timeout_s": 600}],
        "machines": machines,
        "artisans": [{"id": 1, "name": "Awa Ndiaye", "phone": "+221 77 000 00 01", "trade": "menuiserie",
                      "cooperative": None, "member": True, "status": "active",
                      "badges": [{"uid": UID, "status": "active"}],
                      "qualifications": [{"type": "lathe", "expires_on": None}]}],
    })


WS = workshop()
CFG = plugs_from_data(WS.plugs_mapping())
ROUTER = Router(CFG)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")
    users = {"gateway": BrokerUser("gw-t", secrets.token_urlsafe(12),
                                   [f"topic readwrite crp/v1/{SITE}/#", *gateway_plug_acl([GEN2], "gw-t")]),
             "sim": BrokerUser("sim-t", secrets.token_urlsafe(12), [f"topic readwrite crp/v1/{SITE}/#"]),
             "observer": BrokerUser("obs-t", secrets.token_urlsafe(12), ["topic read #"])}
    for m in WS.plug_machines:
        users[m.node] = BrokerUser(m.node, secrets.token_urlsafe(12), plug_acl(m.plug.type, m.plug.topic, "gw-t"))
    b = Broker(tmp_path_factory.mktemp("plug-run"), users=list(users.values())).start()
    yield b, users
    b.stop()


def client(b: Broker, user: BrokerUser, subs: list[str], on_message) -> mqtt.Client:
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
    c.username_pw_set(user.username, user.password)
    c.on_connect = lambda cl, *_: cl.subscribe([(s, 1) for s in subs])
    c.on_subscribe = lambda *_: ready.set()
    c.on_message = on_message
    c.connect(b.host, b.port)
    c.loop_start()
    assert ready.wait(WAIT_S)
    return c


class PlugGateway:
    """Answers the readers for their plug machine and switches the plug like the gateway."""

    def __init__(self, b: Broker, user: BrokerUser):
        self.open: dict[str, bool] = {}
        self.readers = CFG.reader_machines()
        self.rpc = 0
        self.client = client(b, user, [f"crp/v1/{SITE}/+/badge"], self._on)

    def _on(self, c, _u, m) -> None:
        _, reader, _, badge = contract.decode_uplink(m.topic, m.payload)
        machine = self.readers[reader]
        on = not self.open.get(machine, False)
        self.open[machine] = on
        d = DecisionMsg(boot=badge.boot, req=badge.seq, result="grant" if on else "end",
                        reason=None if on else "tap_out", artisan="1")
        c.publish(contract.topic(SITE, reader, "decision"), contract.encode(d), qos=1)
        pid = CFG.machine_plug(machine)
        self.rpc += 1
        topic, payload, qos = relay_command(CFG, CFG.plugs[pid], on, self.rpc, "crp-gw-t")
        c.publish(topic, payload, qos=qos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Observer:
    def __init__(self, b: Broker, user: BrokerUser):
        self.msgs: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = client(b, user, ["#"], self._on)

    def _on(self, _c, _u, m) -> None:
        with self.lock:
            self.msgs.append((m.topic, bytes(m.payload)))

    def of_plug(self, pid: str) -> list[tuple[str, bytes]]:
        with self.lock:
            return [(t, p) for t, p in self.msgs if (r := ROUTER.route(t)) is not None and r.plug == pid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def readings(msgs):
    last, out = None, []
    for t, p in msgs:
        route = ROUTER.route(t)
        if route.rest in ("rpc", "relay/0/command") or route.rest.startswith("cmnd/"):
            continue  # commands to the plug
        last, rs = convert(route, p, last)
        out += rs
    return out


def test_plug_machines_play_taps_work_reports_and_power_cuts(broker, tmp_path):
    b, users = broker
    gw = PlugGateway(b, users["gateway"])
    obs = Observer(b, users["observer"])
    actions = []
    for mid, *_ in PLUGGED:
        actions += [(T0 + 60, mid, Op.TAP, {"uid": UID, "expect": "grant"}),
                    (T0 + 90, mid, Op.WORK, {"cycles": CYCLES}),
                    (T0 + 600, mid, Op.TAP_OUT, {"uid": UID, "expect": "end", "reason": "tap_out"})]
    actions += [(T0 + 300, "saw-t", Op.FAULT, {"code": "estop", "active": True}),  # a plug has no fault input
                (T0 + 700, None, Op.POWER_CUT, {"machines": ["overlock-s2"]}),
                (T0 + 800, None, Op.POWER_RESTORE, {"machines": ["overlock-s2"]})]
    creds = {u: (users[u].username, users[u].password) for u in users if u.startswith("plug-")}
    clock = ScaledClock(real_origin=time.time() + 0.5, sim_origin=T0, speed=SPEED)
    try:
        report = runner.run_scenario(script(actions), WS, b.host, b.port, users["sim"].username,
                                     users["sim"].password, clock, tmp_path / "flash", plug_creds=creds)
        time.sleep(0.5)  # the last messages and Wills reach the observer
    finally:
        gw.close()
        obs.close()
    assert (report.taps, report.grants, report.ends, report.timeouts) == (6, 3, 3, 0)
    assert not report.mismatches and report.skipped == 1  # the fault on the Tasmota machine
    assert report.power_cuts == 1 and report.nodes_cut == 1
    # Readers boot under their own node ids; the node machine was played as usual.
    assert sorted(p.name for p in (tmp_path / "flash").iterdir()) == sorted(
        ["node-lathe-n.json"] + [f"node-reader-{mid}.json" for mid, *_ in PLUGGED])
    for mid, kind, topic, load in PLUGGED:
        pid = f"plug-{mid}"
        msgs = obs.of_plug(pid)
        rs = readings(msgs)
        relays = [r.relay for r in rs if r.relay is not None]
        assert True in relays and relays[-1] is False, (pid, relays)  # switched on, then off at the tap out
        powers = [r.power_w for r in rs if r.power_w is not None]
        assert load in powers and powers[-1] < 100, (pid, powers)
        energies = [r.energy_wh for r in rs if r.energy_wh is not None]
        if kind == "shelly2":  # its counter restarted at the power-up after the cut
            energies = energies[:next(i for i in range(1, len(energies)) if energies[i] < energies[i - 1])]
        expected = load * sum(on for on, _ in CYCLES) / 3600
        assert expected * 0.98 <= energies[-1] - energies[0] <= expected * 1.1 + 1.0, (pid, energies)
        # Periodic reports every PLUG_REPORT_S simulated seconds, stamped at their planned times.
        if kind == "tasmota":
            times = sorted({json.loads(p)["Time"] for t, p in msgs if t.endswith("/SENSOR")})
            secs = [time.mktime(time.strptime(x, "%Y-%m-%dT%H:%M:%S")) - time.timezone for x in times]
            periodic = [s for s in secs if (s - secs[0]) % runner.PLUG_REPORT_S == 0]
            assert len(periodic) >= 600 / runner.PLUG_REPORT_S, times
        wills = [p for t, p in msgs if t.endswith(("/LWT", "/online"))]
        assert wills[-1] in (b"Offline", b"false"), (pid, wills)  # switched off at the end of the run
    s2_wills = [p for t, p in obs.of_plug("plug-overlock-s2") if t.endswith("/online")]
    assert s2_wills.count(b"false") >= 2 and s2_wills.count(b"true") >= 2  # the cut and the restore
    assert report.messages >= sum(len(obs.of_plug(f"plug-{m}")) for m, *_ in PLUGGED) // 2


def test_plug_machines_need_plug_credentials(broker, tmp_path):
    b, users = broker
    clock = ScaledClock(real_origin=time.time(), sim_origin=T0, speed=SPEED)
    acts = script([(T0 + 5, "saw-t", Op.TAP, {"uid": UID})])
    with pytest.raises(runner.MissingPlugCredentials, match="saw-t"):
        runner.run_scenario(acts, WS, b.host, b.port, "x", "y", clock, tmp_path, plug_creds=None)
    with pytest.raises(runner.MissingPlugCredentials, match="overlock-s2"):
        runner.run_scenario([], WS, b.host, b.port, "x", "y", clock, tmp_path, machines=["overlock-s2"])
    with pytest.raises(runner.MissingPlugCredentials, match="plug-saw-t"):
        runner.run_scenario(acts, WS, b.host, b.port, "x", "y", clock, tmp_path, plug_creds={})
    # Without plug credentials and without plug actions only the node machines play.
    report = runner.run_scenario([], WS, b.host, b.port, users["sim"].username, users["sim"].password, clock,
                                 tmp_path / "flash", until=clock.now() + 30)
    assert report.taps == 0
    assert [p.name for p in (tmp_path / "flash").iterdir()] == ["node-lathe-n.json"]
    assert [m.id for m in WS.without_plugs().machines] == ["lathe-n"]


def test_a_plugs_own_periodic_reports_follow_the_simulated_clock(broker):
    """SimPlug's report thread: report k is stamped at power-up + k x period, without drift."""
    b, users = broker
    obs = Observer(b, users["observer"])
    m = WS.machine("saw-t")
    user = users[m.node]
    clock = ScaledClock(real_origin=time.time(), sim_origin=T0, speed=SPEED)
    from firmware_sim.plugs import make_plug

    plug = make_plug("tasmota", m.plug.topic, b.host, b.port, user.username, user.password, clock,
                     client_id=m.node, report_period_s=30.0)
    try:
        plug.power_on(at=T0 + 1)
        deadline = time.monotonic() + WAIT_S
        while len([t for t, _ in obs.of_plug(m.node) if t.endswith("/SENSOR")]) < 6:
            assert time.monotonic() < deadline, "fewer than 6 periodic reports"
            time.sleep(0.02)
    finally:
        plug.power_cut()
        obs.close()
    stamps = [json.loads(p)["Time"] for t, p in obs.of_plug(m.node) if t.endswith("/SENSOR")][:6]
    secs = [time.mktime(time.strptime(x, "%Y-%m-%dT%H:%M:%S")) - time.timezone for x in stamps]
    assert secs == [T0 + 1 + 30 * k for k in range(1, 7)], stamps
