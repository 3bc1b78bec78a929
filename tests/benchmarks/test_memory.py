"""Smoke test of the gateway memory benchmark (a few seconds, no threshold asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import memory

pytestmark = pytest.mark.mqtt


def test_memory_samples_and_every_message_spooled(mqtt_tools, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(memory, "SAMPLE_S", 0.5)
    figs, raw = memory.bench_gateway_memory(duration_s=2.0, rate=200.0, workdir=tmp_path)
    assert len(figs) == 3
    assert raw["sent"] > 0
    assert raw["spooled"] == raw["sent"]
    assert len(raw["samples"]) >= 3
    assert all(mb > 0 for _, mb in raw["samples"])
