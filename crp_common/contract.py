"""The MQTT contract between machine nodes, the workshop gateway and the server.

This module is the single source of truth for topics, payload schemas, QoS and retain
choices. The simulator, the gateway and the server all validate against it; `docs/protocol.md`
describes the same contract for firmware authors.

Topic tree (MQTT 3.1.1 only, no v5 features)::

    crp/v1/<site>/<machine>/<kind>        node -> gateway  (uplink kinds below)
    crp/v1/<site>/<machine>/decision      gateway -> node  (answer to a badge request)
    crp/v1/<site>/<machine>/cmd           gateway -> node  (relay off, lock, unlock)
    crp/v1/<site>/_gw/<gateway>/status    gateway presence (retained, with Last Will)

Every node message carries ``node``, ``boot`` (a counter the node increments at every power-up
and keeps in flash) and ``seq`` (a counter reset to 1 at each boot), so ``(node, boot, seq)``
names one message uniquely. Seq 0 of each boot is reserved for the node's Last Will.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CONTRACT_VERSION = 1
TOPIC_ROOT = "crp/v1"
GATEWAY_SEGMENT = "_gw"
MAX_PAYLOAD_BYTES = 4096

SITE_RE = re.compile(r"^[A-Z0-9]{2,8}$")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
# Machine type codes never appear in topics, so they may use underscores ("arc_welder").
TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
# ISO 14443 UIDs are 4, 7 or 10 bytes: 8, 14 or 20 hex digits.
BADGE_UID_RE = re.compile(r"^(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$")

MAX_U32 = 2**32 - 1
MAX_UPTIME_MS = 2**53


class Kind(StrEnum):
    """Uplink message kinds (node -> gateway)."""

    STATUS = "status"
    HEARTBEAT = "hb"
    BADGE = "badge"
    RELAY = "relay"
    MOTOR = "motor"
    CURRENT = "current"
    TEMP = "temp"
    VIB = "vib"
    FAULT = "fault"
    ENERGY = "energy"


class Downlink(StrEnum):
    DECISION = "decision"
    CMD = "cmd"


class DenyReason(StrEnum):
    """Why a badge was refused. Codes are stable; texts go through :mod:`crp_common.i18n`."""

    UNKNOWN_BADGE = "unknown_badge"
    BADGE_REVOKED = "badge_revoked"
    ARTISAN_SUSPENDED = "artisan_suspended"
    NOT_QUALIFIED = "not_qualified"
    QUALIFICATION_EXPIRED = "qualification_expired"
    MACHINE_IN_USE = "machine_in_use"
    MACHINE_LOCKED = "machine_locked"
    MACHINE_FAULT = "machine_fault"
    CREDIT_LIMIT = "credit_limit"
    UNKNOWN_MACHINE = "unknown_machine"


class EndReason(StrEnum):
    """Why a session ended."""

    TAP_OUT = "tap_out"
    IDLE = "idle"
    HANDOVER = "handover"
    POWER_LOSS = "power_loss"
    LOCKOUT = "lockout"
    FAULT = "fault"


class FaultCode(StrEnum):
    ESTOP = "estop"
    THERMAL = "thermal"
    OVERCURRENT = "overcurrent"
    SENSOR = "sensor"
    OTHER = "other"


# Fault codes that stop and lock the machine at once (decided at the gateway, so offline too).
CRITICAL_FAULTS = frozenset({FaultCode.ESTOP.value, FaultCode.THERMAL.value, FaultCode.OVERCURRENT.value})


class MachineState(StrEnum):
    AVAILABLE = "available"
    IN_USE = "in_use"
    MAINTENANCE = "maintenance"
    FAULT = "fault"
    OFFLINE = "offline"


class ContractError(ValueError):
    """A message that does not follow the contract. ``reason`` is a stable code for counters."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------- payload models

NodeId = Annotated[str, Field(pattern=ID_RE.pattern)]
U32 = Annotated[int, Field(ge=0, le=MAX_U32, strict=True)]
Uptime = Annotated[int, Field(ge=0, le=MAX_UPTIME_MS, strict=True)]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1]
    node: NodeId
    boot: U32
    seq: U32
    up: Uptime
    # The node's own wall clock (epoch seconds), if it has one. Never trusted for event time:
    # the gateway records the skew against its own clock.
    ts: Annotated[float, Field(ge=0, le=1e11)] | None = None


class StatusMsg(_Msg):
    state: Literal["online", "offline"]
    up: Uptime | None = None  # the Last Will cannot know the uptime
    fw: Annotated[str, Field(max_length=32)] | None = None


class HeartbeatMsg(_Msg):
    relay: bool
    motor: bool
    rssi: Annotated[int, Field(ge=-127, le=0)] | None = None


class BadgeMsg(_Msg):
    uid: str

    @field_validator("uid", mode="before")
    @classmethod
    def _uid(cls, v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError("uid must be a string of hex digits")
        u = v.strip().upper().replace(":", "")
        if not BADGE_UID_RE.match(u):
            raise ValueError("uid must be 8, 14 or 20 hex digits (4, 7 or 10 byte UID)")
        return u


class RelayMsg(_Msg):
    on: bool


class MotorMsg(_Msg):
    running: bool
    amps: Annotated[float, Field(ge=0, le=1000)] | None = None


class CurrentMsg(_Msg):
    amps: Annotated[float, Field(ge=0, le=1000)]


class TempMsg(_Msg):
    c: Annotated[float, Field(ge=-40, le=250)]


class VibMsg(_Msg):
    rms: Annotated[float, Field(ge=0, le=200)]  # mm/s RMS


class FaultMsg(_Msg):
    code: FaultCode
    active: bool


class EnergyMsg(_Msg):
    """The meter's cumulative energy counter in Wh (metering plugs, or a node with a meter).
    Counters may restart after a power cut: consumers take differences within one boot and
    never count a counter going backwards as negative energy."""

    wh: Annotated[float, Field(ge=0, le=1e12)]


class DecisionMsg(BaseModel):
    """Gateway -> node answer to a badge request ``(boot, req)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    boot: U32
    req: U32
    result: Literal["grant", "deny", "end"]
    reason: str | None = None
    artisan: Annotated[str, Field(max_length=32)] | None = None
    text: Annotated[str, Field(max_length=64)] = ""


class CommandMsg(BaseModel):
    """Gateway -> node command. Nodes must obey ``relay_off`` at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: Annotated[str, Field(max_length=64)]
    cmd: Literal["relay_off", "lock", "unlock"]
    reason: str | None = None
    text: Annotated[str, Field(max_length=64)] = ""


@dataclass(frozen=True)
class KindSpec:
    kind: str
    model: type[BaseModel]
    qos: int
    retain: bool
    # Telemetry kinds are samples: losing one is tolerable, they are sent at QoS 0.
    telemetry: bool = False


UPLINK: dict[str, KindSpec] = {
    Kind.STATUS: KindSpec(Kind.STATUS, StatusMsg, qos=1, retain=True),
    Kind.HEARTBEAT: KindSpec(Kind.HEARTBEAT, HeartbeatMsg, qos=0, retain=False, telemetry=True),
    Kind.BADGE: KindSpec(Kind.BADGE, BadgeMsg, qos=1, retain=False),
    Kind.RELAY: KindSpec(Kind.RELAY, RelayMsg, qos=1, retain=False),
    Kind.MOTOR: KindSpec(Kind.MOTOR, MotorMsg, qos=1, retain=False),
    Kind.CURRENT: KindSpec(Kind.CURRENT, CurrentMsg, qos=0, retain=False, telemetry=True),
    Kind.TEMP: KindSpec(Kind.TEMP, TempMsg, qos=0, retain=False, telemetry=True),
    Kind.VIB: KindSpec(Kind.VIB, VibMsg, qos=0, retain=False, telemetry=True),
    Kind.FAULT: KindSpec(Kind.FAULT, FaultMsg, qos=1, retain=False),
    Kind.ENERGY: KindSpec(Kind.ENERGY, EnergyMsg, qos=0, retain=False, telemetry=True),
}

DOWNLINK: dict[str, KindSpec] = {
    Downlink.DECISION: KindSpec(Downlink.DECISION, DecisionMsg, qos=1, retain=False),
    Downlink.CMD: KindSpec(Downlink.CMD, CommandMsg, qos=1, retain=False),
}


# --------------------------------------------------------------------------- topics


def topic(site: str, machine: str, kind: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{machine}/{kind}"


def gateway_status_topic(site: str, gateway: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{GATEWAY_SEGMENT}/{gateway}/status"


def uplink_filter(site: str) -> str:
    """The subscription a gateway makes for its site (one level per machine, then kind)."""
    return f"{TOPIC_ROOT}/{site}/+/+"


def parse_topic(t: str) -> tuple[str, str, str]:
    """Split an uplink topic into ``(site, machine, kind)`` or raise ContractError."""
    parts = t.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        raise ContractError("unknown_topic", t[:200])
    _, _, site, machine, kind = parts
    if not SITE_RE.match(site):
        raise ContractError("bad_site", site[:50])
    if machine.startswith("_"):
        # crp/v1/<site>/_tech/..., _gw/...: the system's own topics, not node messages.
        raise ContractError("system_topic", machine[:50])
    if machine == GATEWAY_SEGMENT or not ID_RE.match(machine):
        raise ContractError("bad_machine", machine[:50])
    if kind not in UPLINK:
        if kind in DOWNLINK:
            raise ContractError("downlink_topic", kind)
        raise ContractError("unknown_kind", kind[:50])
    return site, machine, kind


# --------------------------------------------------------------------------- decoding


def _first_error(e: ValidationError) -> str:
    err = e.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "payload"
    return f"{loc}: {err.get('msg', 'invalid')}"


def decode_uplink(t: str, payload: bytes) -> tuple[str, str, str, BaseModel]:
    """Validate one uplink message: returns ``(site, machine, kind, message)``.

    Raises :class:`ContractError` with a stable reason code: ``unknown_topic``, ``bad_site``,
    ``bad_machine``, ``unknown_kind``, ``downlink_topic``, ``too_large``, ``not_utf8``,
    ``not_json``, ``not_object``, ``bad_version``, ``invalid`` or ``bad_lwt``.
    """
    site, machine, kind = parse_topic(t)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ContractError("not_utf8", str(e)[:200]) from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ContractError("not_json", str(e)[:200]) from None
    if not isinstance(data, dict):
        raise ContractError("not_object", type(data).__name__)
    if data.get("v") != CONTRACT_VERSION:
        raise ContractError("bad_version", repr(data.get("v"))[:50])
    spec = UPLINK[kind]
    try:
        msg = spec.model.model_validate(data)
    except ValidationError as e:
        raise ContractError("invalid", _first_error(e)) from None
    if isinstance(msg, StatusMsg):
        if msg.state == "offline" and msg.seq != 0:
            raise ContractError("bad_lwt", "offline status must use seq 0")
        if msg.state == "online" and (msg.seq == 0 or msg.up is None):
            raise ContractError("invalid", "online status needs seq >= 1 and up")
    elif msg.seq == 0:
        raise ContractError("invalid", "seq 0 is reserved for the Last Will")
    return site, machine, kind, msg


def encode(msg: BaseModel) -> bytes:
    return msg.model_dump_json(exclude_none=True).encode()


def body_of(msg: BaseModel) -> dict[str, Any]:
    """The message fields without the identifying header, as stored in an event body."""
    return msg.model_dump(mode="json", exclude={"v", "node", "boot", "seq", "up", "ts"}, exclude_none=True)
