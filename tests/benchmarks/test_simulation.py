"""Smoke test of the simulation benchmark: the first simulated minutes of a day."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import simulation

pytestmark = pytest.mark.mqtt


def test_play_the_start_of_a_day(mqtt_tools, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(simulation, "CLOCK_LEAD_REAL_S", 2.5)
    run = simulation.play_day(720.0, tmp_path, play_s=1200.0)  # the first taps come within 15 minutes of opening
    assert run["taps"] > 0
    assert run["messages"] > 0
    assert 0 < run["day_share"] < 1
    assert set(run) >= {"speed", "real_s", "days_per_min", "timeouts", "mismatches", "max_late_s", "correct"}
