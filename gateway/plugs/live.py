"""Per-plug live state: readings in, the contract's records out. Pure (no I/O, no clock).

A plug has no uptime and no message counter, so the gateway gives its records a synthetic
identity ``(source=plug id, boot, seq)`` and stamps them with its own receive time:

- ``boot`` is the plug's *epoch*: it starts at 1 and goes up when the plug comes back after
  being offline (its Last Will said so) or when its energy counter went backwards (it
  rebooted without the broker noticing). A new epoch is a new boot for the tracker and the
  session fold: like a node's reboot, it closes an open session at the plug's last sign of life.
- ``seq`` is ``max(previous seq + 1, ms since the epoch began // SEQ_UNIT_MS + 1)``: unique
  within the epoch even across a gateway restart, because the epoch and its start are kept in
  the spool and the clock moves on while the gateway restarts. Seq 0 is the epoch's Last Will
  (``status`` offline), as for nodes. An epoch older than SEQ_UNIT_MS * 2^32 (about 497 days)
  starts a new one.

Records: ``status`` (online at the start of an epoch, offline from the Last Will), ``relay``
(on change), ``motor`` (running above ``threshold_w``, stopped below ``threshold_w -
hysteresis``), ``current`` (samples while running, when the plug measures amps), ``energy``
(the counter in Wh, every time the plug reports it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from crp_common.contract import MAX_U32, Kind

from .mapping import PlugSpec
from .readings import PlugReading

SEQ_UNIT_MS = 10


@dataclass(frozen=True)
class PlugRecord:
    source: str
    boot: int
    seq: int
    kind: str
    machine: str
    t: int
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlugLive:
    plug: str
    boot: int = 0
    epoch_ms: int = 0
    last_seq: int = 0
    online: bool = False
    relay: bool | None = None
    running: bool = False
    last_wh: float | None = None
    dirty: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("dirty")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PlugLive":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "dirty"})

    # ------------------------------------------------------------------ identity

    def _seq(self, now_ms: int) -> int:
        seq = max(self.last_seq + 1, (now_ms - self.epoch_ms) // SEQ_UNIT_MS + 1)
        self.last_seq = seq
        return seq

    def _record(self, spec: PlugSpec, kind: str, now_ms: int, body: dict[str, Any], seq: int | None = None) -> PlugRecord:
        return PlugRecord(self.plug, self.boot, self._seq(now_ms) if seq is None else seq, str(kind), spec.machine,
                          now_ms, body)

    def _new_epoch(self, spec: PlugSpec, now_ms: int) -> list[PlugRecord]:
        self.boot += 1
        self.epoch_ms = now_ms
        self.last_seq = 0
        self.online = True
        self.relay = None
        self.running = False
        self.last_wh = None
        self.dirty = True
        return [self._record(spec, Kind.STATUS, now_ms, {"state": "online"})]

    # ------------------------------------------------------------------ readings

    def observe(self, spec: PlugSpec, r: PlugReading, now_ms: int) -> list[PlugRecord]:
        out: list[PlugRecord] = []
        if r.online is False:
            if self.online:
                self.online = False
                self.relay = None
                self.running = False
                self.dirty = True
                out.append(self._record(spec, Kind.STATUS, now_ms, {"state": "offline"}, seq=0))
            return out
        if not self.online or (self.epoch_ms and (now_ms - self.epoch_ms) // SEQ_UNIT_MS >= MAX_U32 - 1):
            out += self._new_epoch(spec, now_ms)
        if r.energy_wh is not None and self.last_wh is not None and r.energy_wh < self.last_wh:
            out += self._new_epoch(spec, now_ms)  # the counter restarted: the plug rebooted
        if r.relay is not None and r.relay != self.relay:
            self.relay = r.relay
            self.dirty = True
            out.append(self._record(spec, Kind.RELAY, now_ms, {"on": r.relay}))
            if not r.relay and self.running:
                self.running = False
                out.append(self._record(spec, Kind.MOTOR, now_ms, {"running": False, "amps": 0.0}))
        if r.power_w is not None:
            amps = {"amps": round(r.amps, 3)} if r.amps is not None else {}
            if not self.running and r.power_w > spec.threshold_w and self.relay is not False:
                self.running = True
                self.dirty = True
                out.append(self._record(spec, Kind.MOTOR, now_ms, {"running": True, **amps}))
            elif self.running and r.power_w < spec.off_below_w:
                self.running = False
                self.dirty = True
                out.append(self._record(spec, Kind.MOTOR, now_ms, {"running": False, **amps}))
            elif self.running and amps:
                out.append(self._record(spec, Kind.CURRENT, now_ms, amps))
        if r.energy_wh is not None:
            self.last_wh = r.energy_wh
            out.append(self._record(spec, Kind.ENERGY, now_ms, {"wh": r.energy_wh}))
        return out
