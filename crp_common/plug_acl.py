"""Broker ACL lines for metering plugs (docs/plugs.md), which speak their firmware's topics
outside ``crp/v1/``: one plug's own topics, and what a gateway needs to read and command them.
Pure text, shared by the demo/test stack (crp_cli) and the server's ``crp broker config``."""

from __future__ import annotations

# Metering plugs (docs/plugs.md) speak their firmware's topics, outside crp/v1/.
PLUG_TOPIC_FAMILIES = ("tele/#", "stat/#", "cmnd/#", "shellies/#")
TASMOTA_FULL_TOPIC = "%prefix%/%topic%/"


def gateway_plug_acl(gen2_prefixes: tuple[str, ...] | list[str] = (), gateway_id: str | None = None) -> list[str]:
    """What the gateway needs to read and command plugs: the Tasmota and Shelly Gen1 families,
    each Shelly Gen2 prefix, and the RPC answers addressed to it (``crp-<gateway>/rpc``)."""
    lines = [f"topic readwrite {f}" for f in PLUG_TOPIC_FAMILIES]
    lines += [f"topic readwrite {p}/#" for p in gen2_prefixes]
    if gateway_id:
        lines.append(f"topic read crp-{gateway_id}/rpc")
    return lines


def plug_acl(kind: str, topic: str, gateway_id: str | None = None, full_topic: str = TASMOTA_FULL_TOPIC) -> list[str]:
    """One plug's own topics only: it publishes its reports and Last Will, and reads the
    commands addressed to it. ``topic``: Tasmota %topic%, Shelly Gen1 id or Shelly Gen2 prefix."""
    if any(c in topic for c in "#+") or not topic:
        raise ValueError(f"plug topic {topic!r}: no wildcards")
    if kind == "tasmota":
        def ft(prefix: str) -> str:
            return full_topic.replace("%prefix%", prefix).replace("%topic%", topic)
        return [f"topic write {ft('tele')}#", f"topic write {ft('stat')}#", f"topic read {ft('cmnd')}#"]
    if kind == "shelly1":
        base = f"shellies/{topic}"
        return [f"topic write {base}/#", f"topic read {base}/relay/+/command", f"topic read {base}/command",
                "topic read shellies/command"]
    if kind == "shelly2":
        lines = [f"topic write {topic}/online", f"topic write {topic}/status/#", f"topic write {topic}/events/#",
                 f"topic read {topic}/rpc", f"topic read {topic}/command/#"]
        if gateway_id:
            lines.append(f"topic write crp-{gateway_id}/rpc")  # answers to the gateway's RPC
        return lines
    raise ValueError(f"unknown plug type {kind!r}")
