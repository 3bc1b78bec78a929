"""Condition rules on telemetry and node fault codes, evaluated at the gateway. Pure: no I/O,
no clock; the service passes each sample with its time (gateway clock, epoch ms) and records
what comes out as gateway ``alert`` facts (crp_common.events.GatewayKind.ALERT).

A rule (crp_common.snapshot.SnapCondition) holds when its metric is above ``above``
continuously for ``for_s`` seconds. Samples arrive at irregular times; "continuously" means
every sample since the first one above the limit was above it, with no gap between two
samples longer than :data:`MAX_SAMPLE_GAP_S` (a gap is missing information: the hold starts
again at the next sample). A rule raises once when it starts to hold and clears once when a
sample is at or below the limit; it does not raise again until it has cleared.

Node fault codes (``fault`` messages, body ``{code, active}``) raise a fault alert once per
active code and clear it when the node reports the code inactive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from crp_common.contract import CRITICAL_FAULTS, Kind
from crp_common.snapshot import SnapCondition


# Two samples further apart than this do not make a continuous hold (telemetry is QoS 0 and
# nodes send every few seconds to a minute; a silent node must not "hold" a condition).
MAX_SAMPLE_GAP_S = 120.0

# Contract kind -> the body field carrying the value, for each metric a rule can watch.
METRIC_FIELDS: dict[str, str] = {Kind.TEMP: "c", Kind.VIB: "rms", Kind.CURRENT: "amps"}


@dataclass
class Hold:
    """Where one rule stands on one machine."""

    since_ms: int | None = None  # first sample of the current run above the limit
    last_ms: int | None = None  # latest sample of this metric seen
    raised: bool = False


def condition_cause(rule_id: str) -> str:
    return f"condition:{rule_id}"


def fault_cause(code: str) -> str:
    return f"fault:{code}"


class ConditionMonitor:
    """Tracks condition rules and fault codes per machine; :meth:`observe` returns alert fact
    bodies (each with its time ``t``) to record as gateway ``alert`` events."""

    def __init__(self, max_gap_s: float | None = None):
        self.max_gap_ms = int(1000 * (MAX_SAMPLE_GAP_S if max_gap_s is None else max_gap_s))
        self.rules: dict[str, list[SnapCondition]] = {}
        self.holds: dict[str, dict[str, Hold]] = {}
        self.faults: dict[str, list[str]] = {}  # machine -> fault codes raised and not cleared

    # ------------------------------------------------------------------ rules

    def set_rules(self, machine_id: str, rules: list[SnapCondition], t_ms: int | None = None) -> list[dict[str, Any]]:
        """Replace a machine's rules (from a new snapshot). Holds of rules that remain are kept.
        A removed rule that was raised is cleared: with ``t_ms`` the cleared facts are
        returned, so the server closes its alert."""
        self.rules[machine_id] = list(rules)
        keep = {r.id for r in rules}
        holds = self.holds.setdefault(machine_id, {})
        out: list[dict[str, Any]] = []
        for rid in [r for r in holds if r not in keep]:
            h = holds.pop(rid)
            if h.raised and t_ms is not None:
                out.append({"cause": condition_cause(rid), "kind": "condition", "state": "cleared",
                            "reason": "rule_removed", "t": t_ms})
        return out

    # ------------------------------------------------------------------ samples

    def observe(self, machine: str, kind: str, body: dict[str, Any], t_ms: int) -> list[dict[str, Any]]:
        """One node message for ``machine`` (kind = contract kind, body = message without its
        header), in arrival order. Returns alert fact bodies, each with ``t``."""
        if kind == Kind.FAULT:
            return self._fault(machine, body, t_ms)
        field_name = METRIC_FIELDS.get(kind)
        if field_name is None:
            return []
        value = body.get(field_name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return []
        out: list[dict[str, Any]] = []
        holds = self.holds.setdefault(machine, {})
        for rule in self.rules.get(machine, []):
            if rule.metric != kind:
                continue
            h = holds.setdefault(rule.id, Hold())
            if h.last_ms is not None and t_ms < h.last_ms:
                continue  # an older sample arriving late says nothing about now
            if h.last_ms is not None and t_ms - h.last_ms > self.max_gap_ms:
                h.since_ms = None  # a gap: we do not know it held in between
            h.last_ms = t_ms
            if value > rule.above:
                if h.since_ms is None:
                    h.since_ms = t_ms
                if not h.raised and t_ms - h.since_ms >= rule.for_s * 1000:
                    h.raised = True
                    out.append({
                        "cause": condition_cause(rule.id), "kind": "condition", "state": "raised",
                        "metric": rule.metric, "value": value, "limit": rule.above, "for_s": rule.for_s,
                        "since": h.since_ms, "critical": rule.critical, "t": t_ms,
                    })
            else:
                h.since_ms = None
                if h.raised:
                    h.raised = False
                    out.append({
                        "cause": condition_cause(rule.id), "kind": "condition", "state": "cleared",
                        "metric": rule.metric, "value": value, "limit": rule.above, "t": t_ms,
                    })
        return out

    def _fault(self, machine: str, body: dict[str, Any], t_ms: int) -> list[dict[str, Any]]:
        code = body.get("code")
        if not isinstance(code, str) or not code:
            return []
        active = self.faults.setdefault(machine, [])
        if body.get("active"):
            if code in active:
                return []
            active.append(code)
            return [{"cause": fault_cause(code), "kind": "fault", "state": "raised", "code": code,
                     "critical": code in CRITICAL_FAULTS, "t": t_ms}]
        if code not in active:
            return []
        active.remove(code)
        return [{"cause": fault_cause(code), "kind": "fault", "state": "cleared", "code": code, "t": t_ms}]

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": {m: [r.model_dump(mode="json") for r in rs] for m, rs in self.rules.items()},
            "holds": {m: {rid: asdict(h) for rid, h in hs.items()} for m, hs in self.holds.items()},
            "faults": {m: list(codes) for m, codes in self.faults.items() if codes},
        }

    def load(self, d: dict[str, Any]) -> None:
        self.rules = {m: [SnapCondition.model_validate(r) for r in rs] for m, rs in d.get("rules", {}).items()}
        self.holds = {m: {rid: Hold(**h) for rid, h in hs.items()} for m, hs in d.get("holds", {}).items()}
        self.faults = {m: list(codes) for m, codes in d.get("faults", {}).items()}
