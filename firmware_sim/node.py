"""One simulated machine node: an ESP32-class board with an RFID reader, a relay, a current
clamp and temperature/vibration sensors, speaking the MQTT contract of :mod:`crp_common.contract`.

Like the real firmware it keeps a boot counter in flash (a JSON file per node in ``state_dir``),
restarts its message sequence at every boot, announces itself with a retained ``online`` status
and leaves a retained ``offline`` Last Will with seq 0. A power cut closes the TCP connection
without DISCONNECT, so the broker publishes the Will exactly as it would for a real node.

Every method that reports a physical event takes ``at``: the simulated time (epoch seconds) at
which the event happened. ``up`` is computed from it, so durations are exact whatever the
scheduling jitter of the Python thread that publishes. Without ``at`` the node uses its clock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ValidationError

from crp_common import contract
from crp_common.clock import Clock
from crp_common.contract import (
    UPLINK,
    BadgeMsg,
    CommandMsg,
    CurrentMsg,
    DecisionMsg,
    FaultMsg,
    HeartbeatMsg,
    Kind,
    MotorMsg,
    RelayMsg,
    StatusMsg,
    TempMsg,
    VibMsg,
)

log = logging.getLogger(__name__)

KEEPALIVE_S = 15  # real seconds; the broker publishes the Will after 1.5x this without traffic
CONNECT_TIMEOUT_S = 10.0  # real seconds to get CONNACK and SUBACK
LOOP_TIMEOUT_S = 0.05  # real seconds per network loop iteration
RECONNECT_DELAY_S = 0.5  # real seconds between reconnection attempts
FLUSH_TIMEOUT_S = 1.0  # real seconds a power cut lets already-sent bytes leave the socket
DEFAULT_FW = "crp-node 1.4.2"
RSSI_DBM = -61


class NodeError(RuntimeError):
    pass


def _no_op(*_: Any) -> None:
    return None


class MachineNode:
    """A machine node with its own MQTT client. Thread-safe: the runner calls it from one thread
    while downlink messages arrive on the node's network thread."""

    def __init__(self, site: str, machine: str, node_id: str, host: str, port: int,
                 username: str | None, password: str | None, clock: Clock, state_dir: str | Path,
                 fw: str = DEFAULT_FW, clock_skew_s: float | None = None):
        self.site, self.machine, self.node_id = site, machine, node_id
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.clock = clock
        self.state_path = Path(state_dir) / f"{node_id}.json"
        self.fw = fw
        self.clock_skew_s = clock_skew_s

        self.boot = 0
        self.seq = 0
        self.boot_at = 0.0  # simulated time of the power-up
        self.powered = False
        self.relay = False
        self.motor_running = False
        self.locked = False
        self.silent = False  # powered but sending nothing (hung radio)
        self.sent = 0
        self.bad_downlinks = 0
        self.commands: list[CommandMsg] = []

        self._last_up = 0
        self._connected_boot: int | None = None  # the boot whose first connection came up
        self._lock = threading.RLock()  # seq allocation + publish order + state
        self._decided = threading.Condition(self._lock)
        self._decisions: dict[int, DecisionMsg] = {}
        self._req_at: dict[int, float] = {}
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._sub_mid: int | None = None

    # ------------------------------------------------------------------ flash

    def _read_boot(self) -> int:
        try:
            return int(json.loads(self.state_path.read_text("utf-8")).get("boot", 0))
        except (OSError, ValueError, AttributeError):
            return 0

    def _write_boot(self, boot: int) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"node": self.node_id, "boot": boot}), "utf-8")
        os.replace(tmp, self.state_path)

    # ------------------------------------------------------------------ power

    def power_on(self, at: float | None = None, wait: bool = True) -> None:
        """Power-up: a new boot (counter incremented in flash), seq restarts, connect."""
        with self._lock:
            if self.powered:
                raise NodeError(f"{self.node_id} is already powered")
            self.boot = self._read_boot() + 1
            self._write_boot(self.boot)
            self.seq = 0
            self.boot_at = self.clock.now() if at is None else at
            self._last_up = 0
            self.relay = self.motor_running = self.silent = False
            self._decisions.clear()
            self._req_at.clear()
            self.powered = True
        self._ready.clear()
        self._stop.clear()
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id=self.node_id, protocol=mqtt.MQTTv311, clean_session=True)
        if self.username:
            client.username_pw_set(self.username, self.password)
        will = StatusMsg(v=1, node=self.node_id, boot=self.boot, seq=0, state="offline")
        spec = UPLINK[Kind.STATUS]
        client.will_set(self._topic(Kind.STATUS), contract.encode(will), qos=spec.qos, retain=spec.retain)
        client.on_socket_open = self._on_socket_open
        # Only the node's network thread writes to the socket: publish() from another thread
        # just queues (and wakes the loop), which keeps messages in seq order on the wire.
        client.on_socket_register_write = _no_op
        client.on_socket_unregister_write = _no_op
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        try:
            client.connect(self.host, self.port, keepalive=KEEPALIVE_S)
        except OSError as e:
            log.warning("%s: cannot connect to %s:%s (%s), will retry", self.node_id, self.host, self.port, e)
        self._thread = threading.Thread(target=self._loop, args=(client,), name=f"mqtt-{self.node_id}",
                                        daemon=True)
        self._thread.start()
        if wait and not self._ready.wait(CONNECT_TIMEOUT_S):
            raise NodeError(f"{self.node_id}: no connection to the broker {self.host}:{self.port}")

    def power_cut(self) -> None:
        """Abrupt loss of power: the socket dies without DISCONNECT (the broker publishes the
        Last Will); nothing more is sent. The boot counter stays in flash.

        Messages published before the cut were, in simulated time, sent before it: they are
        let out of the socket first (within FLUSH_TIMEOUT_S) so a cut loses nothing the real
        node would have transmitted."""
        with self._lock:
            if not self.powered:
                return
            self.powered = False
            self.relay = self.motor_running = False
            self._decided.notify_all()
            client = self._client
        if client is not None and self._ready.is_set():
            deadline = time.monotonic() + FLUSH_TIMEOUT_S
            while client.want_write() and time.monotonic() < deadline:
                time.sleep(0.002)
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        client, self._client = self._client, None
        sock = client.socket() if client is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def power_restore(self, at: float | None = None, wait: bool = True) -> None:
        self.power_on(at=at, wait=wait)

    def shutdown(self) -> None:
        """End of the simulation: same as a power cut (nodes have no clean shutdown)."""
        self.power_cut()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    # ------------------------------------------------------------------ network thread

    def _loop(self, client: mqtt.Client) -> None:
        while not self._stop.is_set():
            rc = client.loop(timeout=LOOP_TIMEOUT_S)
            if self._stop.is_set():
                break
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self._ready.clear()
                if self._stop.wait(RECONNECT_DELAY_S):
                    break
                try:
                    client.reconnect()
                except OSError:
                    pass

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("%s: connection refused: %s", self.node_id, reason_code)
            return
        result, mid = client.subscribe([(self._topic(contract.Downlink.DECISION), 1),
                                        (self._topic(contract.Downlink.CMD), 1)])
        self._sub_mid = mid
        # First connection of a boot: the true uptime at the moment of publishing, as a real
        # node reports it: the gateway anchors the boot on it (receive time - uptime), so
        # connection time does not shift anything (stamping it "up 0" would make the anchor
        # late by the connection time). A RE-connection (the broker restarted) reports the
        # latest uptime already sent: "now" runs ahead of the player's planned timeline by its
        # lag and, uptime never going back, would stamp the next planned messages late.
        with self._lock:
            again = self._connected_boot == self.boot
            self._connected_boot = self.boot
            at = self.boot_at + self._last_up / 1000 if again else self.clock.now()
        self._publish(StatusMsg, Kind.STATUS, at, state="online", fw=self.fw)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        if mid == self._sub_mid and not any(rc.is_failure for rc in reason_codes):
            self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        try:
            data = json.loads(msg.payload)
            if kind == contract.Downlink.DECISION:
                self._on_decision(DecisionMsg.model_validate(data))
            elif kind == contract.Downlink.CMD:
                self._on_command(CommandMsg.model_validate(data))
        except (ValueError, ValidationError) as e:
            with self._lock:
                self.bad_downlinks += 1
            log.warning("%s: bad downlink on %s: %s", self.node_id, msg.topic, str(e)[:200])

    def _on_decision(self, d: DecisionMsg) -> None:
        with self._lock:
            if not self.powered or d.boot != self.boot or d.req not in self._req_at or d.req in self._decisions:
                return  # a stale answer (previous boot, unknown request) or a duplicate
            at = self._req_at[d.req]
            self._decisions[d.req] = d
            if d.result == "grant":
                self._set_relay(True, at)
            elif d.result == "end":
                self._set_relay(False, at)
            self._decided.notify_all()

    def _on_command(self, c: CommandMsg) -> None:
        with self._lock:
            if not self.powered:
                return
            self.commands.append(c)
            at = self.clock.now()
            if c.cmd == "relay_off":
                self._set_relay(False, at)
            elif c.cmd == "lock":
                self.locked = True
                self._set_relay(False, at)
            elif c.cmd == "unlock":
                self.locked = False

    # ------------------------------------------------------------------ publishing

    def _topic(self, kind: str) -> str:
        return contract.topic(self.site, self.machine, kind)

    def _up_ms(self, at: float) -> int:
        up = max(0, int(round((at - self.boot_at) * 1000)))
        self._last_up = max(self._last_up, up)  # uptime never goes back within a boot
        return self._last_up

    def _publish(self, model: type[BaseModel], kind: str, at: float | None, **fields: Any) -> int | None:
        """Build, number and send one message; returns its seq (None when powered off)."""
        with self._lock:
            client = self._client
            if not self.powered or client is None or (self.silent and kind != Kind.STATUS):
                return None
            at = self.clock.now() if at is None else at
            self.seq += 1
            header: dict[str, Any] = dict(v=1, node=self.node_id, boot=self.boot, seq=self.seq, up=self._up_ms(at))
            if self.clock_skew_s is not None:
                header["ts"] = round(at + self.clock_skew_s, 3)
            msg = model(**header, **fields)
            spec = UPLINK[kind]
            client.publish(self._topic(kind), contract.encode(msg), qos=spec.qos, retain=spec.retain)
            self.sent += 1
            return self.seq

    def _set_relay(self, on: bool, at: float) -> None:
        with self._lock:
            if self.relay == on:
                return
            self.relay = on
            self._publish(RelayMsg, Kind.RELAY, at, on=on)
            if not on and self.motor_running:
                # No power to the motor: the current clamp sees it stop.
                self.motor_running = False
                self._publish(MotorMsg, Kind.MOTOR, at, running=False, amps=0.0)

    # ------------------------------------------------------------------ device actions

    def tap(self, uid: str, at: float | None = None) -> int | None:
        """A badge is presented: publish the request, return its seq (None when powered off)."""
        with self._lock:
            at = self.clock.now() if at is None else at
            seq = self._publish(BadgeMsg, Kind.BADGE, at, uid=uid)
            if seq is not None:
                self._req_at[seq] = at
            return seq

    def wait_decision(self, req: int, timeout: float) -> DecisionMsg | None:
        """Wait up to ``timeout`` real seconds for the answer to request ``req``."""
        deadline = time.monotonic() + timeout
        with self._decided:
            while req not in self._decisions:
                left = deadline - time.monotonic()
                if left <= 0 or not self.powered:
                    return None
                self._decided.wait(left)
            return self._decisions[req]

    def tap_and_wait(self, uid: str, timeout: float, at: float | None = None) -> tuple[int | None, DecisionMsg | None]:
        req = self.tap(uid, at)
        return req, (None if req is None else self.wait_decision(req, timeout))

    def motor(self, on: bool, amps: float | None = None, at: float | None = None) -> bool:
        """Switch the motor (the artisan presses start/stop). It only runs with the relay on.
        Returns whether the motor state changed."""
        with self._lock:
            if not self.powered or self.motor_running == on or (on and not self.relay):
                return False
            self.motor_running = on
            self._publish(MotorMsg, Kind.MOTOR, at, running=on, amps=(amps if on else 0.0))
            return True

    def heartbeat(self, at: float | None = None) -> int | None:
        return self._publish(HeartbeatMsg, Kind.HEARTBEAT, at, relay=self.relay, motor=self.motor_running,
                             rssi=RSSI_DBM)

    def current(self, amps: float, at: float | None = None) -> int | None:
        return self._publish(CurrentMsg, Kind.CURRENT, at, amps=round(amps, 2))

    def temperature(self, celsius: float, at: float | None = None) -> int | None:
        return self._publish(TempMsg, Kind.TEMP, at, c=round(celsius, 1))

    def vibration(self, rms: float, at: float | None = None) -> int | None:
        return self._publish(VibMsg, Kind.VIB, at, rms=round(rms, 2))

    def fault(self, code: str, active: bool, at: float | None = None) -> int | None:
        with self._lock:
            seq = self._publish(FaultMsg, Kind.FAULT, at, code=code, active=active)
            if active and code in ("estop", "thermal", "overcurrent") and self.motor_running:
                # An emergency stop or a trip cuts the motor at once.
                self.motor_running = False
                self._publish(MotorMsg, Kind.MOTOR, at, running=False, amps=0.0)
            return seq

    def report_relay(self, at: float | None = None) -> int | None:
        """Report the relay state (as the firmware does after a change or on request)."""
        return self._publish(RelayMsg, Kind.RELAY, at, on=self.relay)

    def set_silent(self, silent: bool) -> None:
        with self._lock:
            self.silent = silent
