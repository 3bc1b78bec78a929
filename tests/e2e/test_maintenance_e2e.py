"""Maintenance through the real pipeline: the simulator overheats a grain mill, hits an emergency
stop while the server is down, silences a node, and a technician locks a running machine. Each
alert appears within a stated simulated time, each is notified exactly once per channel (MQTT on
the workshop broker and a webhook), the lock-out holds offline and online, escalation fires, and
closing the work order resolves the alert and unlocks the machine."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from crp_cli.broker import find_mosquitto
from crp_cli.demo import WebhookReceiver
from crp_cli.stack import Stack
from crp_common.clock import ScaledClock
from firmware_sim.runner import run_scenario
from firmware_sim.scenario import script
from firmware_sim.workshop import load_workshop
from tests.conftest import need_service

SPEED = 300.0
T = dt.datetime(2026, 3, 3, 8, 0, tzinfo=dt.timezone.utc).timestamp()
AISSATOU, LAMINE, MOUSSA = "7EA468C6", "960E9558", "1DF997D5"


def at(s: float) -> float:
    return T + s


ACTIONS = script([
    # grain-mill-1 runs 40 minutes; from 5 min its temperature climbs above 70 °C for 10 minutes.
    (at(0), "grain-mill-1", "tap", {"uid": AISSATOU}),
    (at(60), "grain-mill-1", "work", {"cycles": [[2400, 0]]}),
    (at(300), "grain-mill-1", "overheat", {"duration_s": 600, "peak_c": 78.0}),
    # arc-welder-2: emergency stop while the server is unreachable; Lamine taps after it.
    (at(600), "arc-welder-2", "fault", {"code": "estop", "active": True}),
    (at(700), "arc-welder-2", "tap", {"uid": LAMINE}),
    # bandsaw-2 goes silent for 25 minutes (a node hung, a cable pulled).
    (at(100), "bandsaw-2", "silence", {"duration_s": 1500}),
    # metal-lathe-1 in use when the technician locks it at 20 min.
    (at(0), "metal-lathe-1", "tap", {"uid": MOUSSA}),
    (at(60), "metal-lathe-1", "work", {"cycles": [[600, 300], [1200, 0]]}),
    (at(2700), "metal-lathe-1", "tap", {"uid": MOUSSA}),  # tries again: locked
])


@pytest.mark.faults
def test_alerts_notifications_lockout_and_work_orders(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")
    workshop = load_workshop()
    clock = ScaledClock(real_origin=time.time() + 8.0, sim_origin=T - 120, speed=SPEED)
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'crp.db'}", clock_spec=clock.spec())
    hooks = WebhookReceiver().start()
    heard: list[dict] = []
    log: list[str] = []
    try:
        stack.start_broker()
        stack.server_env.update(stack.notify_mqtt_env())
        stack.server_env["CRP_BACKGROUND_JOBS"] = "true"
        stack.start_server()
        stack.seed(workshop)
        with stack.api() as api:
            for body in (
                {"machine_type": "grain_mill", "kind": "condition", "metric": "temp", "above": 70, "for_s": 300,
                 "task": "Surchauffe moteur"},
                {"machine_type": "arc_welder", "kind": "fault", "fault_code": "estop", "critical": True,
                 "task": "Contrôle après arrêt d'urgence"},
            ):
                assert api.post("/api/v1/maintenance/plans", json=body).status_code == 201
            tech = api.post("/api/v1/technicians", json={"site": "DKR", "name": "Ibou", "lang": "fr"}).json()
            for channel, address in (("mqtt", "atelier"), ("webhook", hooks.url)):
                r = api.post("/api/v1/notification-targets",
                             json={"technician_id": tech["id"], "channel": channel, "address": address})
                assert r.status_code == 201, r.text
        stack.gateway_env["CRP_BADGE_MAX_AGE_S"] = str(3 * SPEED)
        stack.start_gateway()

        user, password = stack.mqtt_creds("monitor")
        listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tech-device", protocol=mqtt.MQTTv311)
        listener.username_pw_set(user, password)
        listener.on_connect = lambda c, *_: c.subscribe("crp/v1/DKR/_tech/alerts", qos=1)
        listener.on_message = lambda _c, _u, m: heard.append(json.loads(m.payload))
        listener.connect(stack.broker.host, stack.broker.port)
        listener.loop_start()

        def chaos() -> None:
            def wait_until(s: float) -> None:
                while clock.now() < T + s:
                    time.sleep(0.01)
            wait_until(500)
            stack.server.kill9()  # the emergency stop happens with the server unreachable
            log.append("server down")
            wait_until(900)
            stack.start_server()
            log.append("server up")
            wait_until(1200)
            with stack.api() as api:
                r = api.post("/api/v1/machines/metal-lathe-1/lock", json={"reason": "courroie usée", "by": "Ibou"})
                log.append(f"lock {r.status_code}")

        th = threading.Thread(target=chaos, daemon=True)
        th.start()
        report = run_scenario(ACTIONS, workshop, stack.broker.host, stack.broker.port, *stack.mqtt_creds("sim"),
                              clock, tmp_path / "nodes", until=at(3000))
        th.join(30)
        assert log == ["server down", "server up", "lock 200"]
        stack.wait_settled(60, after_ms=clock.now_ms(), open_sessions=None)
        # Lock-out offline: the gateway refused the welder on the node's own fault.
        lamine = [d for d in report.decisions if d.machine == "arc-welder-2"]
        assert [(d.result, d.reason) for d in lamine] == [("deny", "machine_fault")]
        # Lock-out online: the lathe's running session ended, and the next tap is refused.
        moussa = [d for d in report.decisions if d.machine == "metal-lathe-1"]
        assert [(d.result, d.reason) for d in moussa] == [("grant", None), ("deny", "machine_locked")]

        with stack.api() as api:
            # Escalation runs on the server's clock (the same accelerated clock): wait for it.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                alerts = {(a["machine"], a["kind"]): a for a in api.get("/api/v1/alerts").json()}
                fault = alerts.get(("arc-welder-2", "fault"))
                if fault and fault["escalated_at"] and not api.get(
                        "/api/v1/notifications", params={"status": "pending"}).json():
                    break
                time.sleep(0.5)
            def t(a: dict, field: str) -> float:
                return dt.datetime.fromisoformat(a[field].replace("Z", "+00:00")).timestamp()

            over = alerts[("grain-mill-1", "condition")]
            # Above 70 °C from about 6 min (ramp), held 5 min: raised by 12 min (a 60 s sample later).
            assert at(600) <= t(over, "raised_at") <= at(720), over
            fault = alerts[("arc-welder-2", "fault")]
            assert abs(t(fault, "raised_at") - at(600)) < 5 and fault["critical"]
            assert fault["escalated_at"] and t(fault, "escalated_at") - t(fault, "raised_at") >= 30 * 60
            silent = alerts[("bandsaw-2", "offline")]
            # Offline since its last sign of life (a heartbeat within the minute before the silence
            # at 100 s); the alert is dated 15 minutes after that.
            assert at(100 - 60 + 900) <= t(silent, "raised_at") <= at(100 + 900), silent
            sessions = api.get("/api/v1/sessions", params={"machine": "metal-lathe-1"}).json()
            assert [s["end_reason"] for s in sessions] == ["lockout"]

            deliveries = api.get("/api/v1/notifications").json()
            assert all(d["status"] == "sent" for d in deliveries), deliveries
            per = Counter((d["alert"], d["event"], d["channel"]) for d in deliveries)
            assert per and set(per.values()) == {1}  # exactly one per channel per alert event
            for a in (over, fault, silent):
                assert per[(a["id"], "raised", "mqtt")] == 1 and per[(a["id"], "raised", "webhook")] == 1
            assert per[(fault["id"], "escalated", "webhook")] == 1
            assert len(hooks.received) == sum(1 for d in deliveries if d["channel"] == "webhook")
            time.sleep(0.5)
            assert len(heard) == sum(1 for d in deliveries if d["channel"] == "mqtt")

            # The work order: closing it resolves the alert and unlocks the welder.
            assert api.get("/api/v1/machines/arc-welder-2").json()["locked"] is True
            wo = api.post("/api/v1/work-orders", json={"alert_id": fault["id"], "by": "Ibou"}).json()
            r = api.post(f"/api/v1/work-orders/{wo['id']}/close",
                         json={"work_done": "Bouton réarmé, câblage vérifié", "minutes_spent": 25, "by": "Ibou"})
            assert r.status_code == 200, r.text
            assert api.get(f"/api/v1/alerts/{fault['id']}").json()["state"] == "resolved"
            assert api.get("/api/v1/machines/arc-welder-2").json()["locked"] is False
    finally:
        if "listener" in locals():
            listener.disconnect()
            listener.loop_stop()
        stack.stop()
        hooks.stop()
