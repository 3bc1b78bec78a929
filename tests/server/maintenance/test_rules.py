"""Pure maintenance rules: plan status boundaries and reliability figures."""

from __future__ import annotations

import datetime as dt

import pytest

from server.maintenance.rules import OVERDUE_SHARE, Failure, plan_status, reliability

UTC = dt.timezone.utc


@pytest.mark.parametrize(("used", "expected"), [
    (0, "ok"), (17.99, "ok"), (18, "due_soon"), (19.99, "due_soon"), (20, "due"),
    (20 * (1 + OVERDUE_SHARE) - 0.01, "due"), (20 * (1 + OVERDUE_SHARE), "overdue"), (500, "overdue"),
])
def test_plan_status_boundaries(used, expected):
    assert plan_status(used, 20, 0.1) == expected


def test_no_due_soon_share_and_bad_interval():
    assert plan_status(19.9, 20, 0) == "ok"
    with pytest.raises(ValueError):
        plan_status(1, 0, 0.1)


def test_reliability():
    t = dt.datetime(2026, 3, 2, 8, tzinfo=UTC)
    h = dt.timedelta(hours=1)
    failures = [
        Failure(t, t + dt.timedelta(minutes=30)),  # 30 min repair
        Failure(t + 10 * h, t + 10 * h + dt.timedelta(minutes=90)),  # 9 h 30 later, 90 min repair
        Failure(t + 30 * h, None),  # being repaired
    ]
    r = reliability(failures, run_ms=60 * 3_600_000)
    assert r.failures == 3
    assert r.mtbf_run_h == 20.0  # 60 run-hours / 3 failures
    assert r.mtbf_h == round((9.5 + 18.5) / 2, 2)  # up time between repair and next failure
    assert r.mttr_min == 60.0  # (30 + 90) / 2, the open one not counted
    empty = reliability([], run_ms=10)
    assert (empty.failures, empty.mtbf_run_h, empty.mtbf_h, empty.mttr_min) == (0, None, None, None)
