from __future__ import annotations

import pytest

from gateway.stamping import ANCHOR_REFINE_MS, Stamper, StampError

R = 1_790_000_000_000


def test_times_come_from_uptime_not_arrival() -> None:
    s = Stamper()
    assert s.stamp("n1", 1, 1, 10_000, R) == R
    # delivered 20 s late (queued by the broker): still stamped when it happened
    assert s.stamp("n1", 1, 2, 70_000, R + 80_000) == R + 60_000


def test_late_first_message_is_corrected_by_the_next() -> None:
    s = Stamper()
    s.stamp("n1", 1, 1, 10_000, R + 600_000)  # first seen 10 min late
    t = s.stamp("n1", 1, 2, 20_000, R + 10_000 + 5)
    assert t == R + 10_000 + 5
    assert s.stamp("n1", 1, 3, 30_000, R + 20_010) == R + 20_005


def test_small_jitter_does_not_move_the_anchor() -> None:
    s = Stamper()
    s.stamp("n1", 1, 1, 0, R + 500)
    assert s.stamp("n1", 1, 2, 60_000, R + 60_000 + 1) == R + 60_500
    assert ANCHOR_REFINE_MS > 500


def test_uptime_backwards_within_a_boot_is_refused() -> None:
    s = Stamper()
    s.stamp("n1", 1, 5, 100_000, R)
    with pytest.raises(StampError) as e:
        s.stamp("n1", 1, 6, 10_000, R + 1000)
    assert e.value.reason == "uptime_backwards"


def test_forward_uptime_jump_never_stamps_the_future() -> None:
    s = Stamper()
    s.stamp("n1", 1, 1, 1000, R)
    t = s.stamp("n1", 1, 2, 10**12, R + 1000)
    assert t <= R + 1000 + ANCHOR_REFINE_MS


def test_anchors_persist_and_reload() -> None:
    s = Stamper()
    s.stamp("n1", 1, 1, 5000, R)
    rows = s.take_dirty()
    s2 = Stamper()
    s2.load(rows)
    assert s2.stamp("n1", 1, 2, 65_000, R + 999_999) == R + 60_000
