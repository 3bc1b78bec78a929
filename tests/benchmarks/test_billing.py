"""Smoke test of the billing benchmark with tiny sizes."""

from __future__ import annotations

from benchmarks import billing


def test_billing_growth_figures(monkeypatch) -> None:
    monkeypatch.setattr(billing, "SMALL_REPEATS", 1)
    figs, raw = billing.bench_billing_growth((60, 120))
    assert [f.name for f in figs] == ["bill 60 sessions", "bill 120 sessions", "growth exponent"]
    assert set(raw["runs"]) == {"60", "120"}
    assert raw["exponent"] is not None
