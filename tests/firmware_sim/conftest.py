"""Helpers for the simulator's tests: an MQTT observer that records what the broker delivers,
and a stand-in for the gateway's answers (the tests publish decisions themselves)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Callable

import paho.mqtt.client as mqtt
import pytest

from crp_common import contract
from crp_common.contract import BadgeMsg, DecisionMsg
from firmware_sim.workshop import Workshop, workshop_from_dict

SITE = "DKR"
WAIT_S = 10.0  # real seconds to wait for a message before the test fails


class Recorder:
    """Subscribes to the whole site and keeps every message (topic, payload, retain flag)."""

    def __init__(self, host: str, port: int, creds: tuple[str, str], topic: str = f"crp/v1/{SITE}/#"):
        self.msgs: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"rec-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
        self.client.username_pw_set(*creds)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert subscribed.wait(WAIT_S), "observer could not subscribe"

    def _on_message(self, c, u, m) -> None:
        with self.cond:
            self.msgs.append((m.topic, bytes(m.payload), bool(m.retain)))
            self.cond.notify_all()

    def wait_for(self, pred: Callable[[str, dict, bool], bool], timeout: float = WAIT_S) -> tuple[str, dict, bool]:
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for t, p, r in self.msgs[seen:]:
                    try:
                        data = json.loads(p)
                    except ValueError:
                        continue
                    if pred(t, data, r):
                        return t, data, r
                seen = len(self.msgs)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("expected message did not arrive")
                self.cond.wait(left)

    def of(self, machine: str, kind: str | None = None) -> list[dict]:
        prefix = contract.topic(SITE, machine, kind or "")
        with self.cond:
            return [json.loads(p) for t, p, _ in self.msgs if (t == prefix if kind else t.startswith(prefix))]

    def raw(self) -> list[tuple[str, bytes, bool]]:
        with self.cond:
            return list(self.msgs)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class FakeGateway:
    """Answers badge requests with ``answer(machine, BadgeMsg) -> dict | None`` (DecisionMsg
    fields except boot and req); None leaves the request unanswered."""

    def __init__(self, host: str, port: int, creds: tuple[str, str],
                 answer: Callable[[str, BadgeMsg], dict | None]):
        self.answer = answer
        self.requests: list[tuple[str, BadgeMsg]] = []
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"gw-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
        self.client.username_pw_set(*creds)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"crp/v1/{SITE}/+/badge", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert subscribed.wait(WAIT_S), "fake gateway could not subscribe"

    def _on_message(self, c, u, m) -> None:
        _, machine, _, msg = contract.decode_uplink(m.topic, m.payload)
        self.requests.append((machine, msg))
        fields = self.answer(machine, msg)
        if fields is not None:
            d = DecisionMsg(boot=msg.boot, req=msg.seq, **fields)
            c.publish(contract.topic(SITE, machine, "decision"), contract.encode(d), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def uniq() -> str:
    """A suffix that keeps machine ids (and their retained messages) apart between tests."""
    return uuid.uuid4().hex[:6]


@pytest.fixture
def make_recorder(mosquitto):
    """Factory: ``make_recorder(topic=...)`` starts an observer; all are closed afterwards."""
    made: list[Recorder] = []

    def make(topic: str = f"crp/v1/{SITE}/#") -> Recorder:
        rec = Recorder(mosquitto.host, mosquitto.port, mosquitto.creds("observer"), topic)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.close()


@pytest.fixture
def recorder(make_recorder) -> Recorder:
    return make_recorder()


@pytest.fixture
def fake_gateway(mosquitto):
    """Factory: ``fake_gateway(answer)`` answers badge requests as the test decides."""
    made: list[FakeGateway] = []

    def make(answer: Callable[[str, BadgeMsg], dict | None]) -> FakeGateway:
        gw = FakeGateway(mosquitto.host, mosquitto.port, mosquitto.creds("gateway"), answer)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()


@pytest.fixture
def small_workshop():
    """Factory: a workshop with a few machines whose ids end with a suffix."""
    return _small_workshop


def _small_workshop(suffix: str, machines: tuple[tuple[str, str], ...] = (("bandsaw", "bandsaw"),)) -> Workshop:
    """A workshop with a few machines whose ids end with ``suffix``."""
    return workshop_from_dict({
        "site": {"code": SITE, "name": "Test", "tz": "Africa/Dakar", "currency": "XOF"},
        "machine_types": [
            {"code": "bandsaw", "name_fr": "Scie à ruban", "name_en": "Bandsaw", "idle_timeout_s": 600},
            {"code": "drill_press", "name_fr": "Perceuse", "name_en": "Drill press", "idle_timeout_s": 300},
        ],
        "machines": [{"id": f"{name}-{suffix}", "node": f"node-{name}-{suffix}", "type": typ, "clock_skew_s": 0}
                     for name, typ in machines],
        "artisans": [
            {"id": 1, "name": "Awa Ndiaye", "phone": "+221 77 000 00 01", "trade": "menuiserie",
             "cooperative": None, "member": True, "status": "active",
             "badges": [{"uid": "04A1B2C3", "status": "active"}],
             "qualifications": [{"type": "bandsaw", "expires_on": None}]},
        ],
    })
