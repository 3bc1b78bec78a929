"""Simulated off-the-shelf metering plugs: Tasmota, Shelly Gen1 and Shelly Gen2+, each with its
own MQTT client speaking the firmware's public topics and payloads (not the CRP contract):

- Tasmota: Last Will ``tele/<topic>/LWT`` ``Offline`` (retained), ``Online`` on connect;
  ``tele/<topic>/SENSOR`` ``{"Time":..,"ENERGY":{"TotalStartTime":..,"Total":kWh,"Yesterday":..,
  "Today":..,"Power":W,"ApparentPower":..,"ReactivePower":..,"Factor":..,"Voltage":V,
  "Current":A}}``; ``stat/<topic>/POWER`` ``ON``/``OFF``; obeys ``cmnd/<topic>/POWER``.
- Shelly Gen1: ``shellies/<id>/online`` ``true``/``false`` (Last Will), ``shellies/<id>/relay/0``
  ``on``/``off``, ``.../relay/0/power`` (W), ``.../relay/0/energy`` (watt-minutes); obeys
  ``shellies/<id>/relay/0/command``.
- Shelly Gen2+: ``<prefix>/online``, ``<prefix>/status/switch:0`` (full status), ``<prefix>/events/rpc``
  ``NotifyStatus`` deltas; obeys the JSON-RPC ``Switch.Set`` on ``<prefix>/rpc`` and answers on
  ``<src>/rpc``.

The plug switches a (simulated) machine: with the relay on, the machine draws ``idle_w`` and,
while its motor runs, ``load_w``. The energy counter integrates that power on the simulated
clock. A power cut drops the connection without DISCONNECT (the broker publishes the Last
Will); Shelly counters restart from zero at the next power-up, Tasmota keeps the total it last
saved to flash (at its last report). Relays come back OFF (PowerOnState 0).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
from typing import Any

import paho.mqtt.client as mqtt

from crp_common.clock import Clock

log = logging.getLogger(__name__)

KEEPALIVE_S = 15
CONNECT_TIMEOUT_S = 10.0
REPORT_PERIOD_S = 30.0  # simulated seconds between periodic reports (Tasmota TelePeriod, Shelly update period)
IDLE_W = 3.0
LOAD_W = 750.0
VOLTS = 230.0
DEFAULT_FULL_TOPIC = "%prefix%/%topic%/"


class PlugSimError(RuntimeError):
    pass


class SimPlug:
    """Common behaviour; subclasses speak one firmware's topics."""

    kind = ""

    def __init__(self, device_topic: str, host: str, port: int, username: str | None, password: str | None,
                 clock: Clock, *, client_id: str | None = None, load_w: float = LOAD_W, idle_w: float = IDLE_W,
                 report_period_s: float | None = REPORT_PERIOD_S):
        self.device_topic = device_topic
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.clock = clock
        self.client_id = client_id or f"{self.kind}-{device_topic}".replace("/", "-")[:64]
        self.load_w, self.idle_w = load_w, idle_w
        self.report_period_s = report_period_s
        self.powered = False
        self.relay = False
        self.motor_running = False
        self.energy_wh = 0.0  # the counter as the firmware keeps it
        self.saved_wh = 0.0  # what survives a power cut (Tasmota saves to flash)
        self._at: float | None = None  # simulated time the counter was last integrated to
        self.commands: list[bool] = []
        self.sent = 0  # messages published (Last Will excluded)
        self._lock = threading.RLock()
        self._client: mqtt.Client | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._reporter: threading.Thread | None = None

    # ------------------------------------------------------------------ physics

    @property
    def power_w(self) -> float:
        if not self.powered or not self.relay:
            return 0.0
        return self.load_w if self.motor_running else self.idle_w

    def _integrate(self, at: float) -> None:
        if self._at is not None and at > self._at:
            self.energy_wh += self.power_w * (at - self._at) / 3600.0
        self._at = at if self._at is None else max(self._at, at)

    @property
    def amps(self) -> float:
        return round(self.power_w / VOLTS, 3)

    # ------------------------------------------------------------------ firmware specifics

    def will(self) -> tuple[str, bytes]:
        raise NotImplementedError

    def online_message(self) -> tuple[str, bytes]:
        raise NotImplementedError

    def command_topic(self) -> str:
        raise NotImplementedError

    def parse_command(self, payload: bytes) -> tuple[bool | None, Any]:
        """-> (relay on/off or None, request context)"""
        raise NotImplementedError

    def relay_messages(self, at: float, ctx: Any = None) -> list[tuple[str, bytes, int, bool]]:
        raise NotImplementedError

    def report_messages(self, at: float) -> list[tuple[str, bytes, int, bool]]:
        raise NotImplementedError

    def _counter_after_cut(self) -> float:
        return 0.0  # Shelly: counters restart at power-up

    # ------------------------------------------------------------------ power

    def power_on(self, at: float | None = None, wait: bool = True) -> None:
        with self._lock:
            if self.powered:
                raise PlugSimError(f"{self.client_id} is already powered")
            self.powered = True
            self.relay = self.motor_running = False
            self._at = self.clock.now() if at is None else at
        self._ready.clear()
        self._stop.clear()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311,
                        clean_session=True)
        if self.username:
            c.username_pw_set(self.username, self.password)
        wt, wp = self.will()
        c.will_set(wt, wp, qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *_a: self._ready.set()
        c.on_message = self._on_message
        self._client = c
        c.connect(self.host, self.port, keepalive=KEEPALIVE_S)
        c.loop_start()
        if wait and not self._ready.wait(CONNECT_TIMEOUT_S):
            raise PlugSimError(f"{self.client_id}: no connection to {self.host}:{self.port}")
        if self.report_period_s:
            start = self._at
            self._reporter = threading.Thread(target=self._report_loop, args=(start,), name=f"plug-{self.client_id}",
                                              daemon=True)
            self._reporter.start()

    def power_cut(self) -> None:
        """Abrupt loss of power: no DISCONNECT, the broker publishes the Last Will."""
        with self._lock:
            if not self.powered:
                return
            self._integrate(self.clock.now())
            self.powered = False
            self.relay = self.motor_running = False
            self.energy_wh = self._counter_after_cut()
            client, self._client = self._client, None
        self._stop.set()
        if client is not None:
            sock = client.socket()
            client.loop_stop()
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
        if self._reporter is not None and self._reporter is not threading.current_thread():
            self._reporter.join(5)

    shutdown = power_cut

    # ------------------------------------------------------------------ MQTT

    def _send(self, msgs: list[tuple[str, bytes, int, bool]]) -> None:
        c = self._client
        if c is None or not self.powered:
            return
        for t, p, q, r in msgs:
            c.publish(t, p, qos=q, retain=r)
            self.sent += 1

    def _on_connect(self, client: mqtt.Client, _ud: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            log.warning("%s: connection refused: %s", self.client_id, rc)
            return
        t, p = self.online_message()
        client.publish(t, p, qos=1, retain=True)
        self.sent += 1
        client.subscribe(self.command_topic(), qos=1)

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != self.command_topic():
            return  # not a command to this plug (amqtt delivers Last Wills to every client)
        try:
            on, ctx = self.parse_command(bytes(msg.payload))
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("%s: bad command %r", self.client_id, bytes(msg.payload)[:100])
            return
        if on is None:
            return
        with self._lock:
            if not self.powered:
                return
            at = self.clock.now()
            self.commands.append(on)
            self._integrate(at)
            if not on:
                self.motor_running = False
            self.relay = on
            self._send(self.relay_messages(at, ctx) + self.report_messages(at))

    # ------------------------------------------------------------------ actions

    def press_button(self, at: float | None = None) -> None:
        """Someone toggles the plug by hand (what the interlock must notice)."""
        with self._lock:
            at = self.clock.now() if at is None else at
            self._integrate(at)
            self.relay = not self.relay
            if not self.relay:
                self.motor_running = False
            self._send(self.relay_messages(at) + self.report_messages(at))

    def motor(self, on: bool, at: float | None = None) -> bool:
        """The artisan starts or stops the machine; it only runs with the relay on. The
        firmware reports the power change at once (Tasmota PowerDelta, Shelly on change)."""
        with self._lock:
            if not self.powered or self.motor_running == on or (on and not self.relay):
                return False
            at = self.clock.now() if at is None else at
            self._integrate(at)
            self.motor_running = on
            self._send(self.report_messages(at))
            return True

    def report(self, at: float | None = None) -> None:
        with self._lock:
            at = self.clock.now() if at is None else at
            self._integrate(at)
            self._send(self.report_messages(at))

    def _report_loop(self, start: float) -> None:
        """Periodic reports at simulated times ``start + k * report_period_s``, each stamped with
        its planned time: the schedule follows the simulated clock and never drifts with the
        thread's lateness (a late report is sent at once, still stamped with its own time)."""
        assert self.report_period_s
        k = 1
        while True:
            at = start + k * self.report_period_s
            left = (at - self.clock.now()) / self.clock.speed
            if self._stop.wait(max(0.0, left)):
                return
            self.report(at)
            k += 1


class TasmotaPlug(SimPlug):
    kind = "tasmota"

    def __init__(self, *a: Any, full_topic: str = DEFAULT_FULL_TOPIC, **kw: Any):
        super().__init__(*a, **kw)
        self.full_topic = full_topic
        self.start_time = "2024-01-01T00:00:00"

    def _t(self, prefix: str, suffix: str) -> str:
        return self.full_topic.replace("%prefix%", prefix).replace("%topic%", self.device_topic) + suffix

    def will(self) -> tuple[str, bytes]:
        return self._t("tele", "LWT"), b"Offline"

    def online_message(self) -> tuple[str, bytes]:
        return self._t("tele", "LWT"), b"Online"

    def command_topic(self) -> str:
        return self._t("cmnd", "POWER")

    def parse_command(self, payload: bytes) -> tuple[bool | None, Any]:
        word = payload.decode().strip().upper()
        return {"ON": True, "OFF": False, "1": True, "0": False}.get(word), None

    def _counter_after_cut(self) -> float:
        return self.saved_wh  # the total last saved to flash

    def relay_messages(self, at: float, ctx: Any = None) -> list[tuple[str, bytes, int, bool]]:
        word = b"ON" if self.relay else b"OFF"
        return [(self._t("stat", "RESULT"), json.dumps({"POWER": word.decode()}).encode(), 0, False),
                (self._t("stat", "POWER"), word, 0, False)]

    def report_messages(self, at: float) -> list[tuple[str, bytes, int, bool]]:
        self.saved_wh = self.energy_wh
        p = round(self.power_w)
        kwh = round(self.energy_wh / 1000.0, 3)
        sensor = {"Time": dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                  "ENERGY": {"TotalStartTime": self.start_time, "Total": kwh, "Yesterday": 0.0, "Today": kwh,
                             "Period": 0, "Power": p, "ApparentPower": round(p / 0.95) if p else 0,
                             "ReactivePower": round(p * 0.33) if p else 0, "Factor": 0.95 if p else 0.0,
                             "Voltage": int(VOLTS) if self.powered else 0, "Current": self.amps}}
        return [(self._t("tele", "SENSOR"), json.dumps(sensor).encode(), 0, False)]


class Shelly1Plug(SimPlug):
    kind = "shelly1"

    def _t(self, suffix: str) -> str:
        return f"shellies/{self.device_topic}/{suffix}"

    def will(self) -> tuple[str, bytes]:
        return self._t("online"), b"false"

    def online_message(self) -> tuple[str, bytes]:
        return self._t("online"), b"true"

    def command_topic(self) -> str:
        return self._t("relay/0/command")

    def parse_command(self, payload: bytes) -> tuple[bool | None, Any]:
        return {"on": True, "off": False}.get(payload.decode().strip()), None

    def relay_messages(self, at: float, ctx: Any = None) -> list[tuple[str, bytes, int, bool]]:
        return [(self._t("relay/0"), b"on" if self.relay else b"off", 0, False)]

    def report_messages(self, at: float) -> list[tuple[str, bytes, int, bool]]:
        wm = int(self.energy_wh * 60)  # watt-minutes, as the Gen1 firmware counts
        return [(self._t("relay/0/power"), f"{self.power_w:.2f}".encode(), 0, False),
                (self._t("relay/0/energy"), str(wm).encode(), 0, False)]


class Shelly2Plug(SimPlug):
    """Shelly Gen2+ (Plus Plug S, Plus 1PM...): ``device_topic`` is the MQTT prefix."""

    kind = "shelly2"

    def __init__(self, *a: Any, full_status_every: int = 4, **kw: Any):
        super().__init__(*a, **kw)
        self.reports = 0
        self.full_status_every = full_status_every

    def will(self) -> tuple[str, bytes]:
        return f"{self.device_topic}/online", b"false"

    def online_message(self) -> tuple[str, bytes]:
        return f"{self.device_topic}/online", b"true"

    def command_topic(self) -> str:
        return f"{self.device_topic}/rpc"

    def parse_command(self, payload: bytes) -> tuple[bool | None, Any]:
        frame = json.loads(payload)
        if frame.get("method") != "Switch.Set" or int(frame["params"].get("id", 0)) != 0:
            return None, None
        return bool(frame["params"]["on"]), frame

    def _status(self, at: float) -> dict[str, Any]:
        return {"id": 0, "source": "MQTT", "output": self.relay, "apower": round(self.power_w, 1),
                "voltage": VOLTS if self.powered else 0.0, "freq": 50.0, "current": self.amps,
                "pf": 0.95 if self.power_w else 0.0,
                "aenergy": {"total": round(self.energy_wh, 3), "by_minute": [0.0, 0.0, 0.0],
                            "minute_ts": int(at)},
                "temperature": {"tC": 38.5, "tF": 101.3}}

    def _notify(self, at: float, delta: dict[str, Any]) -> tuple[str, bytes, int, bool]:
        frame = {"src": self.client_id, "dst": f"{self.device_topic}/events", "method": "NotifyStatus",
                 "params": {"ts": round(at, 2), "switch:0": {"id": 0, **delta}}}
        return f"{self.device_topic}/events/rpc", json.dumps(frame).encode(), 0, False

    def relay_messages(self, at: float, ctx: Any = None) -> list[tuple[str, bytes, int, bool]]:
        out = []
        if ctx:
            answer = {"id": ctx.get("id"), "src": self.client_id, "dst": ctx.get("src"),
                      "result": {"was_on": not self.relay}}
            out.append((f"{ctx.get('src')}/rpc", json.dumps(answer).encode(), 0, False))
        out.append(self._notify(at, {"output": self.relay, "source": "MQTT"}))
        return out

    def report_messages(self, at: float) -> list[tuple[str, bytes, int, bool]]:
        self.reports += 1
        if self.reports % self.full_status_every == 1:
            return [(f"{self.device_topic}/status/switch:0", json.dumps(self._status(at)).encode(), 0, False)]
        return [self._notify(at, {"apower": round(self.power_w, 1), "current": self.amps,
                                  "aenergy": {"total": round(self.energy_wh, 3), "by_minute": [0.0, 0.0, 0.0],
                                              "minute_ts": int(at)}})]


PLUG_CLASSES: dict[str, type[SimPlug]] = {"tasmota": TasmotaPlug, "shelly1": Shelly1Plug, "shelly2": Shelly2Plug}


def make_plug(kind: str, device_topic: str, host: str, port: int, username: str | None, password: str | None,
              clock: Clock, **kw: Any) -> SimPlug:
    try:
        cls = PLUG_CLASSES[kind]
    except KeyError:
        raise PlugSimError(f"unknown plug type {kind!r}; one of {', '.join(PLUG_CLASSES)}") from None
    return cls(device_topic, host, port, username, password, clock, **kw)


class PluggedMachine:
    """A machine powered through a metering plug, with a badge reader node publishing under its
    own machine id (``reader``): tap on the reader, the gateway switches the plug, run the motor."""

    def __init__(self, plug: SimPlug, reader: Any):  # reader: firmware_sim.node.MachineNode
        self.plug = plug
        self.reader = reader

    def power_on(self, at: float | None = None) -> None:
        self.plug.power_on(at=at)
        self.reader.power_on(at=at)

    def tap_and_wait(self, uid: str, timeout: float, at: float | None = None):
        return self.reader.tap_and_wait(uid, timeout, at=at)

    def motor(self, on: bool, at: float | None = None) -> bool:
        return self.plug.motor(on, at=at)

    def shutdown(self) -> None:
        self.reader.shutdown()
        self.plug.shutdown()
