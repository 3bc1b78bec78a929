"""The glue between the plugs and the gateway service: routing, conversion, live state, the
interlock. Not thread-safe: the service calls it under its lock. No I/O of its own: it returns
records, commands and facts; the service publishes, spools and persists (:meth:`to_dict`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crp_common.events import GatewayKind

from ..tracker import Fact
from .commands import relay_command
from .converters import convert
from .interlock import InterlockState, reconcile
from .live import PlugLive, PlugRecord
from .mapping import PlugsConfig
from .topics import Route, Router, subscriptions

SPOOL_KEY = "plugs"


@dataclass(frozen=True)
class PlugCommand:
    plug: str
    topic: str
    payload: bytes
    qos: int
    on: bool


class PlugBridge:
    def __init__(self, cfg: PlugsConfig, gateway_id: str = "crp-gateway"):
        self.cfg = cfg
        self.router = Router(cfg)
        self.src = f"crp-{gateway_id}"
        self.live: dict[str, PlugLive] = {pid: PlugLive(pid) for pid in cfg.plugs}
        self.gen2: dict[str, dict[str, Any] | None] = {}
        self.interlock: dict[str, InterlockState] = {pid: InterlockState() for pid in cfg.plugs}
        self.readers = cfg.reader_machines()
        self.machines = {p.machine: pid for pid, p in cfg.plugs.items()}
        self.rpc_id = 0

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        return {"live": {pid: s.to_dict() for pid, s in self.live.items()}, "rpc_id": self.rpc_id}

    def load(self, d: dict[str, Any]) -> None:
        for pid, s in (d.get("live") or {}).items():
            if pid in self.cfg.plugs:
                self.live[pid] = PlugLive.from_dict({**s, "plug": pid})
        self.rpc_id = int(d.get("rpc_id", 0))

    def take_dirty(self) -> bool:
        dirty = any(s.dirty for s in self.live.values())
        for s in self.live.values():
            s.dirty = False
        return dirty

    # ------------------------------------------------------------------ uplink

    def subscriptions(self) -> list[tuple[str, int]]:
        return subscriptions(self.cfg)

    def route(self, topic: str) -> Route | None:
        """None: not a plug topic. Raises PlugError (dead letter) for an unknown plug."""
        return self.router.route(topic)

    def handle(self, route: Route, payload: bytes, now_ms: int) -> list[PlugRecord]:
        """One plug message -> the records to observe and spool (PlugError for bad input)."""
        new_last, readings = convert(route, payload, self.gen2.get(route.plug))
        self.gen2[route.plug] = new_last
        live = self.live[route.plug]
        out: list[PlugRecord] = []
        for r in readings:
            out += live.observe(route.spec, r, now_ms)
        return out

    def badge_machine(self, reader_machine: str) -> str | None:
        """The plug machine whose badges the reader publishing under ``reader_machine`` reads."""
        return self.readers.get(reader_machine)

    # ------------------------------------------------------------------ interlock

    def reconcile(self, sessions_open: dict[str, bool], now_ms: int) -> tuple[list[PlugCommand], list[Fact]]:
        """``sessions_open``: plug machine -> whether a session is open on it now."""
        commands: list[PlugCommand] = []
        facts: list[Fact] = []
        for pid, spec in self.cfg.plugs.items():
            live = self.live[pid]
            want = bool(sessions_open.get(spec.machine, False))
            cmd, alert = reconcile(self.interlock[pid], pid, want, live.relay, live.online, now_ms, spec.grace_s)
            if cmd is not None:
                self.rpc_id += 1
                topic, payload, qos = relay_command(self.cfg, spec, cmd, self.rpc_id, self.src)
                commands.append(PlugCommand(pid, topic, payload, qos, cmd))
            if alert is not None:
                facts.append(Fact(GatewayKind.ALERT, spec.machine, now_ms, alert))
        return commands, facts
