"""Each firmware's relay command: ``(plug, on) -> (topic, payload, qos)``. Pure."""

from __future__ import annotations

import json

from .mapping import PlugSpec, PlugsConfig, PlugType
from .topics import tasmota_power_key, tasmota_topic

COMMAND_QOS = 1


def relay_command(cfg: PlugsConfig, spec: PlugSpec, on: bool, rpc_id: int = 1, src: str = "crp-gateway") -> tuple[str, bytes, int]:
    if spec.type == PlugType.TASMOTA:
        return (tasmota_topic(cfg, "cmnd", spec.topic, tasmota_power_key(spec.channel)),
                b"ON" if on else b"OFF", COMMAND_QOS)
    if spec.type == PlugType.SHELLY1:
        return f"shellies/{spec.topic}/relay/{spec.ch}/command", b"on" if on else b"off", COMMAND_QOS
    frame = {"id": rpc_id, "src": src, "method": "Switch.Set", "params": {"id": spec.ch, "on": on}}
    return f"{spec.topic}/rpc", json.dumps(frame, separators=(",", ":")).encode(), COMMAND_QOS
