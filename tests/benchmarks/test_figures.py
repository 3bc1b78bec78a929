"""The arithmetic behind the figures (pure functions)."""

from __future__ import annotations

import pytest

from benchmarks.figures import count_delivery, growth_exponent, median, percentile, slope_per_minute


def test_median_odd_and_even() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    with pytest.raises(ValueError):
        median([])


def test_percentile_nearest_rank() -> None:
    sample = list(range(1, 101))  # 1..100
    assert percentile(sample, 50) == 50
    assert percentile(sample, 99) == 99
    assert percentile(sample, 100) == 100
    assert percentile([7.0], 99) == 7.0


def test_growth_exponent_linear_and_quadratic() -> None:
    assert growth_exponent([(10, 1.0), (100, 10.0), (1000, 100.0)]) == pytest.approx(1.0)
    assert growth_exponent([(10, 1.0), (100, 100.0)]) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        growth_exponent([(10, 1.0)])


def test_slope_per_minute() -> None:
    samples = [(0.0, 50.0), (30.0, 51.0), (60.0, 52.0)]
    assert slope_per_minute(samples) == pytest.approx(2.0)
    assert slope_per_minute([(0.0, 50.0)]) == 0.0


def test_count_delivery_loss_duplicates_and_strangers() -> None:
    sent = [("n", 1, s) for s in range(1, 11)]
    received = [("n", 1, s) for s in range(1, 8)] + [("n", 1, 3), ("n", 1, 3), ("x", 1, 1)]
    d = count_delivery(sent, received)
    assert (d.sent, d.received, d.unique, d.lost, d.duplicated, d.unexpected) == (10, 10, 7, 3, 2, 1)
