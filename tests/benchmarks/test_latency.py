"""Smoke test of the badge latency benchmark (tiny sizes, no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import latency

pytestmark = pytest.mark.mqtt


def test_badge_latency_figures_and_decisions(mqtt_tools, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(latency, "WARMUP_TAPS", 2)
    figs, raw = latency.bench_badge_latency(n=20, n_nagle=3, workdir=tmp_path)
    assert [f.name for f in figs] == ["gateway p50", "gateway p99", "floor with Nagle on, p50"]
    # Taps alternate: the qualified artisan taps in, then out (after the warm-up's even count).
    assert raw["gateway"]["results"] == {"grant": 10, "end": 10}
    assert raw["echo_nodelay"]["results"] == {"echo": 20}
    assert raw["echo_nagle"]["results"] == {"echo": 3}
    for k in ("gateway", "echo_nodelay", "echo_nagle"):
        assert raw[k]["p50"] <= raw[k]["p99"] <= raw[k]["max"]
