"""Plug topics: which plug a topic belongs to, and what the gateway subscribes to.

Subscriptions are data (:data:`SUBSCRIPTIONS`): per plug type, topic filters built from the
mapping. Tasmota and Shelly Gen1 use one wildcard per family (``tele/+/SENSOR``,
``shellies/+/relay/+/power``...), so a plug that is not in the mapping is seen and
dead-lettered as ``unknown_plug`` instead of silently ignored. Shelly Gen2 prefixes are free
text, so each mapped prefix is subscribed on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .mapping import PlugSpec, PlugsConfig, PlugType
from .readings import PlugError

TASMOTA_PREFIXES = ("tele", "stat", "cmnd")
SHELLY1_ROOT = "shellies"

# (plug type) -> topic filters; "{...}" fields are filled from the mapping. QoS 1 for state
# (relay, presence), 0 for samples.
SUBSCRIPTIONS: dict[str, tuple[tuple[str, int], ...]] = {
    PlugType.TASMOTA: (("{tele}SENSOR", 0), ("{tele}LWT", 1), ("{stat}{power}", 1)),
    PlugType.SHELLY1: (("shellies/+/online", 1), ("shellies/+/relay/+", 1), ("shellies/+/relay/+/power", 0),
                       ("shellies/+/relay/+/energy", 0)),
    PlugType.SHELLY2: (("{prefix}/online", 1), ("{prefix}/status/+", 1), ("{prefix}/events/rpc", 1)),
}


@dataclass(frozen=True)
class Route:
    plug: str
    spec: PlugSpec
    rest: str  # the topic after the device part: "tele/SENSOR", "relay/0/power", "status/switch:0"


def tasmota_power_key(channel: int | None) -> str:
    """Single-relay devices report ``POWER``; channel n of a multi-relay device ``POWER<n+1>``."""
    return "POWER" if channel is None else f"POWER{channel + 1}"


def _full_topic(pattern: str, prefix: str, topic: str) -> str:
    return pattern.replace("%prefix%", prefix).replace("%topic%", topic)


def tasmota_topic(cfg: PlugsConfig, prefix: str, device_topic: str, suffix: str) -> str:
    """e.g. ``tasmota_topic(cfg, "cmnd", "tasmota_5A9AE8", "POWER")`` -> ``cmnd/tasmota_5A9AE8/POWER``."""
    return _full_topic(cfg.tasmota_full_topic, prefix, device_topic) + suffix


def subscriptions(cfg: PlugsConfig) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    types = {p.type for p in cfg.plugs.values()}
    for t in PlugType:
        if t not in types:
            continue
        if t == PlugType.SHELLY2:
            for p in cfg.plugs.values():
                if p.type == t:
                    out += [(f.format(prefix=p.topic), q) for f, q in SUBSCRIPTIONS[t]]
        elif t == PlugType.TASMOTA:
            tele = _full_topic(cfg.tasmota_full_topic, "tele", "+")
            stat = _full_topic(cfg.tasmota_full_topic, "stat", "+")
            powers = sorted({tasmota_power_key(p.channel) for p in cfg.plugs.values() if p.type == t})
            for f, q in SUBSCRIPTIONS[t]:
                if "{power}" in f:
                    out += [(f.format(tele=tele, stat=stat, power=k), q) for k in powers]
                else:
                    out.append((f.format(tele=tele, stat=stat), q))
        else:
            out += list(SUBSCRIPTIONS[t])
    return list(dict.fromkeys(out))


class Router:
    """Topic -> :class:`Route` for a mapping. Pure."""

    def __init__(self, cfg: PlugsConfig):
        self.cfg = cfg
        self.by_type: dict[tuple[str, str], str] = {(str(p.type), p.topic): pid for pid, p in cfg.plugs.items()}
        parts = re.split(r"(%prefix%|%topic%)", cfg.tasmota_full_topic)
        rx = "".join("(?P<prefix>tele|stat|cmnd)" if x == "%prefix%" else "(?P<topic>[^/]+)" if x == "%topic%"
                     else re.escape(x) for x in parts)
        self.tasmota_rx = re.compile(f"^{rx}(?P<rest>[^/]+)$") if any(
            p.type == PlugType.TASMOTA for p in cfg.plugs.values()) else None
        self.gen2 = sorted(((p.topic, pid) for pid, p in cfg.plugs.items() if p.type == PlugType.SHELLY2),
                           key=lambda x: -len(x[0]))
        self.has_shelly1 = any(p.type == PlugType.SHELLY1 for p in cfg.plugs.values())

    def route(self, topic: str) -> Route | None:
        """The plug a topic belongs to; None when it is no plug topic; PlugError
        ``unknown_plug`` when it has a plug family's shape but names no mapped plug."""
        for prefix, pid in self.gen2:
            if topic.startswith(prefix + "/"):
                return Route(pid, self.cfg.plugs[pid], topic[len(prefix) + 1:])
        parts = topic.split("/")
        if self.has_shelly1 and parts[0] == SHELLY1_ROOT and len(parts) >= 3:
            pid = self.by_type.get((PlugType.SHELLY1.value, parts[1]))
            if pid is None:
                raise PlugError("unknown_plug", f"shelly1 {parts[1][:60]}")
            return Route(pid, self.cfg.plugs[pid], "/".join(parts[2:]))
        if self.tasmota_rx is not None:
            m = self.tasmota_rx.match(topic)
            if m:
                pid = self.by_type.get((PlugType.TASMOTA.value, m["topic"]))
                if pid is None:
                    raise PlugError("unknown_plug", f"tasmota {m['topic'][:60]}")
                return Route(pid, self.cfg.plugs[pid], f"{m['prefix']}/{m['rest']}")
        return None
