"""Condition rules and fault codes at the gateway (pure, no broker)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from crp_common.snapshot import SnapCondition
from gateway import conditions as cond_mod
from gateway.conditions import ConditionMonitor

T0 = 1_790_000_000_000
S = 1000
MIN = 60 * S

HOT = SnapCondition(id="7", metric="temp", above=70, for_s=300, critical=True)
VIB = SnapCondition(id="8", metric="vib", above=11.2, for_s=60)
AMPS = SnapCondition(id="9", metric="current", above=16, for_s=10)


def monitor(*rules: SnapCondition, machine: str = "bandsaw-1") -> ConditionMonitor:
    m = ConditionMonitor()
    m.set_rules(machine, list(rules))
    return m


def feed(m: ConditionMonitor, kind: str, field: str, samples: list[tuple[int, float]], machine: str = "bandsaw-1"):
    out = []
    for t, v in samples:
        out.extend(m.observe(machine, kind, {field: v}, t))
    return out


def test_temperature_above_70_for_5_minutes_raises_exactly_once():
    m = monitor(HOT)
    # Irregular samples every 20-50 s, all above 70 °C, for 8 minutes.
    ts, t = [], T0
    while t <= T0 + 8 * MIN:
        ts.append(t)
        t += 20 * S if len(ts) % 2 else 50 * S
    out = feed(m, "temp", "c", [(t, 74.5) for t in ts])
    assert len(out) == 1
    a = out[0]
    assert a["cause"] == "condition:7" and a["kind"] == "condition" and a["state"] == "raised"
    assert a["metric"] == "temp" and a["value"] == 74.5 and a["limit"] == 70 and a["critical"] is True
    assert a["since"] == T0
    # raised by the first sample at least 5 minutes after the first one above the limit
    first_after = min(t for t in ts if t - T0 >= 5 * MIN)
    assert a["t"] == first_after


def test_not_raised_before_the_duration():
    m = monitor(HOT)
    out = feed(m, "temp", "c", [(T0 + i * 30 * S, 80) for i in range(10)])  # 4 min 30 s
    assert out == []


def test_a_dip_resets_the_hold():
    m = monitor(HOT)
    samples = [(T0 + i * 30 * S, 75.0) for i in range(9)]  # 4 minutes above
    samples.append((T0 + 9 * 30 * S, 69.0))  # one sample at or below the limit
    samples += [(T0 + (10 + i) * 30 * S, 75.0) for i in range(9)]  # 4 more minutes above
    assert feed(m, "temp", "c", samples) == []
    # ... and 5 minutes after the dip it holds
    out = feed(m, "temp", "c", [(T0 + 20 * 30 * S, 75.0)])
    assert [a["state"] for a in out] == ["raised"]
    assert out[0]["since"] == T0 + 10 * 30 * S


def test_exactly_at_the_limit_does_not_hold():
    m = monitor(HOT)
    assert feed(m, "temp", "c", [(T0 + i * MIN, 70.0) for i in range(10)]) == []


def test_a_gap_in_samples_resets_the_hold():
    m = monitor(HOT)
    gap = int(cond_mod.MAX_SAMPLE_GAP_S * S) + S
    # 4 minutes above, a gap, then 4 more minutes above: never 5 minutes known to hold
    samples = [(T0 + i * MIN, 80.0) for i in range(5)]
    samples += [(T0 + 4 * MIN + gap + i * MIN, 80.0) for i in range(5)]
    assert feed(m, "temp", "c", samples) == []
    out = feed(m, "temp", "c", [(T0 + 9 * MIN + gap, 80.0)])
    assert len(out) == 1 and out[0]["since"] == T0 + 4 * MIN + gap


def test_cleared_once_then_raised_again():
    m = monitor(HOT)
    up = feed(m, "temp", "c", [(T0 + i * MIN, 72.0) for i in range(6)])
    assert [a["state"] for a in up] == ["raised"]
    down = feed(m, "temp", "c", [(T0 + 6 * MIN, 65.0), (T0 + 7 * MIN, 60.0)])
    assert [(a["state"], a["cause"], a["value"], a["t"]) for a in down] == [("cleared", "condition:7", 65.0, T0 + 6 * MIN)]
    again = feed(m, "temp", "c", [(T0 + (8 + i) * MIN, 90.0) for i in range(6)])
    assert [a["state"] for a in again] == ["raised"]


def test_vibration_and_current_overload():
    m = monitor(VIB, AMPS)
    vib = feed(m, "vib", "rms", [(T0, 12.0), (T0 + 30 * S, 13.0), (T0 + 60 * S, 12.5)])
    assert [(a["cause"], a["metric"], a["state"]) for a in vib] == [("condition:8", "vib", "raised")]
    amps = feed(m, "current", "amps", [(T0, 20.0), (T0 + 5 * S, 21.0), (T0 + 10 * S, 22.0), (T0 + 15 * S, 5.0)])
    assert [(a["cause"], a["state"]) for a in amps] == [("condition:9", "raised"), ("condition:9", "cleared")]
    # a temperature sample does not touch vibration or current rules
    assert m.observe("bandsaw-1", "temp", {"c": 99.0}, T0 + 20 * S) == []


def test_rules_are_per_machine_and_zero_duration_raises_at_once():
    m = ConditionMonitor()
    m.set_rules("lathe-1", [SnapCondition(id="1", metric="current", above=10, for_s=0)])
    assert m.observe("bandsaw-1", "current", {"amps": 50.0}, T0) == []
    assert [a["state"] for a in m.observe("lathe-1", "current", {"amps": 10.5}, T0)] == ["raised"]


def test_unknown_metric_is_impossible_by_type():
    with pytest.raises(ValidationError):
        SnapCondition(id="x", metric="humidity", above=1, for_s=1)
    m = monitor(HOT)
    assert m.observe("bandsaw-1", "hb", {"relay": True, "motor": True}, T0) == []
    assert m.observe("bandsaw-1", "temp", {"c": "hot"}, T0) == []


def test_late_sample_is_ignored():
    m = monitor(SnapCondition(id="1", metric="temp", above=70, for_s=60))
    assert feed(m, "temp", "c", [(T0, 80.0), (T0 + 30 * S, 80.0)]) == []
    assert feed(m, "temp", "c", [(T0 + 10 * S, 20.0)]) == []  # older than the last sample
    assert [a["state"] for a in feed(m, "temp", "c", [(T0 + 60 * S, 80.0)])] == ["raised"]


def test_faults_raise_once_and_clear():
    m = ConditionMonitor()
    f = lambda code, active, t: m.observe("bandsaw-1", "fault", {"code": code, "active": active}, t)  # noqa: E731
    raised = f("estop", True, T0)
    assert raised == [{"cause": "fault:estop", "kind": "fault", "state": "raised", "code": "estop", "critical": True, "t": T0}]
    assert f("estop", True, T0 + S) == []  # repeated: deduplicated
    assert f("sensor", True, T0 + 2 * S)[0]["critical"] is False
    assert f("thermal", False, T0 + 3 * S) == []  # never raised: nothing to clear
    assert [(a["cause"], a["state"]) for a in f("estop", False, T0 + 4 * S)] == [("fault:estop", "cleared")]


def test_removed_rule_that_was_raised_is_cleared():
    m = monitor(HOT)
    feed(m, "temp", "c", [(T0 + i * MIN, 75.0) for i in range(6)])
    out = m.set_rules("bandsaw-1", [VIB], t_ms=T0 + 7 * MIN)
    assert [(a["cause"], a["state"], a["t"]) for a in out] == [("condition:7", "cleared", T0 + 7 * MIN)]
    assert feed(m, "temp", "c", [(T0 + 8 * MIN, 99.0)]) == []


def test_state_survives_a_restart():
    m = monitor(HOT)
    feed(m, "temp", "c", [(T0 + i * MIN, 75.0) for i in range(3)])
    m.observe("bandsaw-1", "fault", {"code": "thermal", "active": True}, T0)
    saved = json.loads(json.dumps(m.to_dict()))
    m2 = ConditionMonitor()
    m2.load(saved)
    out = feed(m2, "temp", "c", [(T0 + 3 * MIN, 75.0), (T0 + 4 * MIN, 75.0), (T0 + 5 * MIN, 75.0)])
    assert [(a["state"], a["since"]) for a in out] == [("raised", T0)]
    assert m2.observe("bandsaw-1", "fault", {"code": "thermal", "active": True}, T0 + MIN) == []
