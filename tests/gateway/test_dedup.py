from __future__ import annotations

from hypothesis import given, strategies as st

from gateway.dedup import Seen


def test_duplicates_replays_and_last_will() -> None:
    s = Seen(window=10)
    assert [s.check("n", 1, q) for q in (1, 2, 3)] == [None, None, None]
    assert s.check("n", 1, 2) == "duplicate"
    assert s.check("n", 1, 0) is None and s.check("n", 1, 0) == "duplicate"
    for q in range(4, 30):
        s.check("n", 1, q)
    assert s.check("n", 1, 5) == "replay"  # went backwards beyond the window
    assert s.check("n", 1, 25) == "duplicate"
    assert s.check("n", 2, 5) is None  # a new boot starts again


def test_late_message_inside_the_window_is_accepted_once() -> None:
    s = Seen(window=10)
    for q in (1, 2, 4, 5):
        s.check("n", 1, q)
    assert s.check("n", 1, 3) is None
    assert s.check("n", 1, 3) == "duplicate"


@given(st.lists(st.integers(min_value=1, max_value=300), max_size=400))
def test_never_accepts_a_seq_twice(seqs: list[int]) -> None:
    s = Seen(window=50)
    accepted = [q for q in seqs if s.check("n", 1, q) is None]
    assert len(accepted) == len(set(accepted))
