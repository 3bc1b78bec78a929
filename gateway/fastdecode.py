"""A fast path for the contract's high-rate telemetry kinds (``current``, ``temp``, ``vib``,
``energy``, ``hb``), taken before :func:`crp_common.contract.decode_uplink`.

Validating these small messages through pydantic, then dumping the body back out through
``json.dumps``, cost more than everything else the gateway does with them. The fast path only
ever *accepts*: it checks a message against the same rules as the contract's models, but only
for the plainest shapes (numbers as JSON numbers, booleans as JSON booleans, strict integers in
the header); anything else, valid or not, returns ``None`` and takes the contract's own path,
which decides and gives the reason for a refusal. So a message accepted here is one the
contract accepts, with the same values and the same body text (tests/gateway/test_fastdecode.py
checks both on generated messages, and that the field table below follows the models).

The body text is built directly, in the models' field order, exactly as
``json.dumps(body_of(msg), separators=(",", ":"), ensure_ascii=False)`` writes it."""

from __future__ import annotations

import re
from typing import Any, Callable

import orjson

from crp_common.contract import (
    CONTRACT_VERSION, MAX_PAYLOAD_BYTES, MAX_U32, MAX_UPTIME_MS, ContractError, Kind, parse_topic,
)

_NODE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
_node_ok = _NODE_RE.fullmatch
HEADER = ("v", "node", "boot", "seq", "up", "ts")
TS_MAX = 1e11
TOPIC_CACHE_MAX = 4096

# kind -> body fields in the model's order: (name, type, required, low, high).
# type "float": a JSON number (not a boolean) within [low, high], stored as a float;
# "bool": a JSON boolean; "int": a JSON integer (not a boolean) within [low, high].
FIELDS: dict[str, tuple[tuple[str, str, bool, float | None, float | None], ...]] = {
    Kind.CURRENT: (("amps", "float", True, 0, 1000),),
    Kind.TEMP: (("c", "float", True, -40, 250),),
    Kind.VIB: (("rms", "float", True, 0, 200),),
    Kind.ENERGY: (("wh", "float", True, 0, 1e12),),
    Kind.HEARTBEAT: (("relay", "bool", True, None, None), ("motor", "bool", True, None, None),
                     ("rssi", "int", False, -127, 0)),
}


class Header:
    """The identifying fields of an accepted message (what the gateway reads of a contract model)."""

    __slots__ = ("node", "boot", "seq", "up", "ts")

    def __init__(self, node: str, boot: int, seq: int, up: int, ts: float | None):
        self.node, self.boot, self.seq, self.up, self.ts = node, boot, seq, up, ts

    def __repr__(self) -> str:
        return f"Header({self.node!r}, {self.boot}, {self.seq}, {self.up}, {self.ts})"


Fast = tuple[str, str, str, Header, dict[str, Any], str]


def _body_checker(fields: tuple[tuple[str, str, bool, float | None, float | None], ...]
                  ) -> Callable[[dict[str, Any]], tuple[dict[str, Any], str] | None]:
    allowed = frozenset(HEADER) | {f[0] for f in fields}
    required = frozenset({"v", "node", "boot", "seq", "up"} | {f[0] for f in fields if f[2]})

    def check(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
        keys = data.keys()
        if not (keys <= allowed and keys >= required):
            return None
        body: dict[str, Any] = {}
        parts = []
        for name, typ, req, lo, hi in fields:
            x = data.get(name)
            if x is None:
                if req:
                    return None
                continue  # optional, absent or null: left out of the body
            tx = type(x)
            if typ == "float":
                if tx is not float and tx is not int:
                    return None
                if not lo <= x <= hi:  # NaN fails too
                    return None
                x = float(x)
                parts.append(f'"{name}":{float.__repr__(x)}')
            elif typ == "bool":
                if tx is not bool:
                    return None
                parts.append(f'"{name}":{"true" if x else "false"}')
            else:
                if tx is not int or not lo <= x <= hi:
                    return None
                parts.append(f'"{name}":{x}')
            body[name] = x
        return body, "{" + ",".join(parts) + "}"

    return check


CHECKERS = {kind: _body_checker(fields) for kind, fields in FIELDS.items()}


class FastDecoder:
    """``decode(topic, payload)`` -> ``(site, machine, kind, header, body, body_text)`` or ``None``
    (then the caller takes :func:`decode_uplink`)."""

    def __init__(self) -> None:
        self._topics: dict[str, tuple[str, str, str, Callable] | None] = {}

    def _topic(self, t: str) -> tuple[str, str, str, Callable] | None:
        try:
            return self._topics[t]
        except KeyError:
            pass
        try:
            site, machine, kind = parse_topic(t)
        except ContractError:
            return None  # not cached: the contract's path says why
        check = CHECKERS.get(kind)
        entry = (site, machine, kind, check) if check is not None else None
        if len(self._topics) >= TOPIC_CACHE_MAX:
            self._topics.clear()
        self._topics[t] = entry
        return entry

    def decode(self, t: str, payload: bytes) -> Fast | None:
        entry = self._topic(t)
        if entry is None or len(payload) > MAX_PAYLOAD_BYTES:
            return None
        try:
            data = orjson.loads(payload)
        except (orjson.JSONDecodeError, TypeError):
            return None
        if type(data) is not dict:
            return None
        get = data.get
        v, node, boot, seq, up, ts = get("v"), get("node"), get("boot"), get("seq"), get("up"), get("ts")
        if type(v) is not int or v != CONTRACT_VERSION:
            return None
        if type(node) is not str or _node_ok(node) is None:
            return None
        if type(boot) is not int or not 0 <= boot <= MAX_U32:
            return None
        if type(seq) is not int or not 1 <= seq <= MAX_U32:  # seq 0 is the Last Will's
            return None
        if type(up) is not int or not 0 <= up <= MAX_UPTIME_MS:
            return None
        if ts is not None:
            if (type(ts) is not float and type(ts) is not int) or not 0 <= ts <= TS_MAX:
                return None
            ts = float(ts)
        site, machine, kind, check = entry
        checked = check(data)
        if checked is None:
            return None
        return site, machine, kind, Header(node, boot, seq, up, ts), checked[0], checked[1]
