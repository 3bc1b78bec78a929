"""Pure converters from each plug firmware's MQTT messages to :class:`PlugReading`.

Every function takes the topic (already routed to a plug, see :mod:`.topics`) and the raw
payload and returns the readings, or raises :class:`PlugError` with a dead-letter reason. A
topic of a known plug that carries nothing the gateway uses (another channel of a channel-mapped
meter, ``status/sys``...) gives ``[]``.

Firmware shapes (public documentation):

- Tasmota: ``tele/<topic>/SENSOR`` ``{"Time":..,"ENERGY":{"TotalStartTime":..,"Total":kWh,
  "Yesterday":kWh,"Today":kWh,"Power":W,"ApparentPower":VA,"ReactivePower":var,"Factor":..,
  "Voltage":V,"Current":A}}`` (multi-channel meters give arrays), ``tele/<topic>/LWT``
  ``Online``/``Offline``, ``stat/<topic>/POWER`` (``POWER<n>`` on multi-relay devices) ``ON``/``OFF``.
- Shelly Gen1: ``shellies/<id>/relay/<n>`` ``on``/``off``/``overpower``,
  ``shellies/<id>/relay/<n>/power`` W, ``shellies/<id>/relay/<n>/energy`` watt-minutes,
  ``shellies/<id>/online`` ``true``/``false``.
- Shelly Gen2+: ``<prefix>/status/switch:<n>`` ``{"id":0,"source":..,"output":bool,"apower":W,
  "voltage":V,"current":A,"aenergy":{"total":Wh,"by_minute":[..],"minute_ts":..},..}``,
  ``<prefix>/events/rpc`` ``{"src":..,"dst":..,"method":"NotifyStatus","params":{"ts":..,
  "switch:0":{<changed fields>}}}`` overlaid on the last status, ``<prefix>/online``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .mapping import PlugType
from .readings import PlugError, PlugReading
from .topics import Route, tasmota_power_key

MAX_PLUG_PAYLOAD_BYTES = 16_384
MAX_POWER_W = 100_000.0
MAX_AMPS = 1000.0
WATT_MINUTES_PER_WH = 60.0


# --------------------------------------------------------------------------- helpers


def _text(payload: bytes) -> str:
    if len(payload) > MAX_PLUG_PAYLOAD_BYTES:
        raise PlugError("too_large", f"{len(payload)} bytes > {MAX_PLUG_PAYLOAD_BYTES}")
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise PlugError("not_utf8", str(e)[:200]) from None


def _json_object(payload: bytes) -> dict[str, Any]:
    text = _text(payload)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise PlugError("not_json", str(e)[:200]) from None
    if not isinstance(data, dict):
        raise PlugError("not_object", type(data).__name__)
    return data


def _word(payload: bytes, values: dict[str, bool], what: str) -> bool:
    t = _text(payload)
    if t not in values:
        raise PlugError("bad_value", f"{what}: {t[:40]!r}, expected one of {', '.join(values)}")
    return values[t]


def _number(v: Any, what: str, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise PlugError("bad_value", f"{what}: {str(v)[:40]!r} is not a number")
    if v < 0 or v > hi:
        raise PlugError("bad_value", f"{what}: {v} out of range 0..{hi:g}")
    return float(v)


def _channel_value(v: Any, channel: int | None, what: str) -> Any:
    """A scalar, or element ``channel`` of a multi-channel array."""
    if isinstance(v, list):
        if channel is None:
            raise PlugError("multi_channel", f"{what} has {len(v)} channels; map the plug's channel")
        if channel >= len(v):
            raise PlugError("multi_channel", f"{what} has {len(v)} channels, channel {channel} is mapped")
        return v[channel]
    return v


def _other_channel(n: int, channel: int | None, what: str) -> bool:
    """True when channel ``n`` is not the mapped one (ignore it); PlugError when the plug is
    mapped as single-channel but reports channel ``n`` >= 1."""
    want = channel or 0
    if n == want:
        return False
    if channel is None:
        raise PlugError("multi_channel", f"{what}: channel {n} reported; map the plug's channel")
    return True


# --------------------------------------------------------------------------- Tasmota

ON_OFF_TASMOTA = {"ON": True, "OFF": False}
ONLINE_TASMOTA = {"Online": True, "Offline": False}


def tasmota(route: Route, payload: bytes) -> list[PlugReading]:
    spec, pid = route.spec, route.plug
    if route.rest == "tele/SENSOR":
        data = _json_object(payload)
        energy = data.get("ENERGY")
        if energy is None:
            raise PlugError("missing_field", "ENERGY (is this a metering plug?)")
        if not isinstance(energy, dict):
            raise PlugError("bad_value", "ENERGY must be an object")
        for f in ("Power", "Total"):
            if f not in energy:
                raise PlugError("missing_field", f"ENERGY.{f}")
        power = _number(_channel_value(energy["Power"], spec.channel, "ENERGY.Power"), "ENERGY.Power", MAX_POWER_W)
        total = _number(_channel_value(energy["Total"], spec.channel, "ENERGY.Total"), "ENERGY.Total", 1e9)
        amps = volts = None
        if energy.get("Current") is not None:
            amps = _number(_channel_value(energy["Current"], spec.channel, "ENERGY.Current"), "ENERGY.Current",
                           MAX_AMPS)
        if energy.get("Voltage") is not None:
            volts = _number(_channel_value(energy["Voltage"], spec.channel, "ENERGY.Voltage"), "ENERGY.Voltage",
                            1000.0)
        return [PlugReading(pid, power_w=power, energy_wh=round(total * 1000.0, 3), amps=amps, volts=volts)]
    if route.rest == "tele/LWT":
        return [PlugReading(pid, online=_word(payload, ONLINE_TASMOTA, "LWT"))]
    prefix, _, key = route.rest.partition("/")
    if prefix == "stat" and key.startswith("POWER"):
        if key != tasmota_power_key(spec.channel):
            n = key[5:]
            if n.isdigit() and spec.channel is None and int(n) >= 2:
                raise PlugError("multi_channel", f"{key} reported; map the plug's channel")
            return []
        return [PlugReading(pid, relay=_word(payload, ON_OFF_TASMOTA, key))]
    return []


# --------------------------------------------------------------------------- Shelly Gen1

ON_OFF_SHELLY1 = {"on": True, "off": False, "overpower": False}
TRUE_FALSE = {"true": True, "false": False}


def shelly1(route: Route, payload: bytes) -> list[PlugReading]:
    spec, pid = route.spec, route.plug
    parts = route.rest.split("/")
    if parts == ["online"]:
        return [PlugReading(pid, online=_word(payload, TRUE_FALSE, "online"))]
    if len(parts) < 2 or parts[0] != "relay" or not parts[1].isdigit():
        return []
    if _other_channel(int(parts[1]), spec.channel, f"relay/{parts[1]}"):
        return []
    what = route.rest
    if len(parts) == 2:
        return [PlugReading(pid, relay=_word(payload, ON_OFF_SHELLY1, what))]
    if parts[2:] == ["power"]:
        return [PlugReading(pid, power_w=_number(_parse_float(payload, what), what, MAX_POWER_W))]
    if parts[2:] == ["energy"]:
        wm = _number(_parse_float(payload, what), what, 1e12)
        return [PlugReading(pid, energy_wh=round(wm / WATT_MINUTES_PER_WH, 3))]
    return []


def _parse_float(payload: bytes, what: str) -> float:
    t = _text(payload)
    try:
        return float(t)
    except ValueError:
        raise PlugError("bad_value", f"{what}: {t[:40]!r} is not a number") from None


# --------------------------------------------------------------------------- Shelly Gen2+


def _overlay(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in delta.items():
        out[k] = _overlay(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _gen2_readings(pid: str, st: dict[str, Any], full: bool) -> list[PlugReading]:
    """Readings from a switch status (``full``: a whole status, whose fields are required)."""
    if full:
        for f in ("output", "apower"):
            if f not in st:
                raise PlugError("missing_field", f"switch.{f}")
        if not isinstance(st.get("aenergy"), dict) or "total" not in st["aenergy"]:
            raise PlugError("missing_field", "switch.aenergy.total")
    kw: dict[str, Any] = {}
    if "output" in st:
        if not isinstance(st["output"], bool):
            raise PlugError("bad_value", "switch.output must be true or false")
        kw["relay"] = st["output"]
    if "apower" in st:
        kw["power_w"] = _number(st["apower"], "switch.apower", MAX_POWER_W)
    if isinstance(st.get("aenergy"), dict) and "total" in st["aenergy"]:
        kw["energy_wh"] = round(_number(st["aenergy"]["total"], "switch.aenergy.total", 1e12), 3)
    if st.get("current") is not None:
        kw["amps"] = _number(st["current"], "switch.current", MAX_AMPS)
    if st.get("voltage") is not None:
        kw["volts"] = _number(st["voltage"], "switch.voltage", 1000.0)
    return [PlugReading(pid, **kw)] if kw else []


def shelly2(last: dict[str, Any] | None, route: Route, payload: bytes) -> tuple[dict[str, Any] | None,
                                                                             list[PlugReading]]:
    """``(last switch status, topic, payload) -> (new switch status, readings)``: a NotifyStatus
    carries only what changed and is overlaid on the last status."""
    spec, pid = route.spec, route.plug
    if route.rest == "online":
        return last, [PlugReading(pid, online=_word(payload, TRUE_FALSE, "online"))]
    if route.rest.startswith("status/switch:"):
        n = route.rest[len("status/switch:"):]
        if not n.isdigit():
            return last, []
        if _other_channel(int(n), spec.channel, f"switch:{n}"):
            return last, []
        st = _json_object(payload)
        readings = _gen2_readings(pid, st, full=True)
        return st, readings
    if route.rest == "events/rpc":
        frame = _json_object(payload)
        method = frame.get("method")
        params = frame.get("params")
        if method not in ("NotifyStatus", "NotifyFullStatus"):
            return last, []
        if not isinstance(params, dict):
            raise PlugError("missing_field", f"{method}.params")
        comps = {k: v for k, v in params.items() if k.startswith("switch:") and k[7:].isdigit()}
        key = f"switch:{spec.ch}"
        for k in comps:
            _other_channel(int(k[7:]), spec.channel, k)
        delta = comps.get(key)
        if delta is None:
            return last, []
        if not isinstance(delta, dict):
            raise PlugError("bad_value", f"{key} must be an object")
        full = method == "NotifyFullStatus"
        new = delta if full else _overlay(last or {}, delta)
        return new, _gen2_readings(pid, delta if not full else new, full=full)
    return last, []


def convert(route: Route, payload: bytes, gen2_last: dict[str, Any] | None = None) -> tuple[
        dict[str, Any] | None, list[PlugReading]]:
    """Any plug: ``(route, payload, last Gen2 status) -> (new Gen2 status, readings)``."""
    t = route.spec.type
    if t == PlugType.TASMOTA:
        return None, tasmota(route, payload)
    if t == PlugType.SHELLY1:
        return None, shelly1(route, payload)
    return shelly2(gen2_last, route, payload)
