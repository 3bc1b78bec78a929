"""The on-disk spool: durable, drained without duplicates, bounded."""

from __future__ import annotations

import sqlite3

import pytest

from server.telemetry.spool import Spool


def lines(a: int, b: int) -> list[str]:
    return [f"m,site=DKR v={i}i {1_700_000_000_000 + i}" for i in range(a, b)]


def test_append_peek_ack_in_order(tmp_path):
    s = Spool(tmp_path / "spool.sqlite")
    assert s.append(lines(0, 10)) == 10
    batch = s.peek(4)
    assert [ln for _, ln in batch] == lines(0, 4)
    # Not acknowledged yet: still there, peeked again identically.
    assert s.peek(4) == batch
    s.ack([i for i, _ in batch])
    assert len(s) == 6
    assert [ln for _, ln in s.peek(100)] == lines(4, 10)


def test_survives_reopen_and_drains_each_point_once(tmp_path):
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    s.append(lines(0, 50))
    first = s.peek(20)
    s.ack([i for i, _ in first])
    s.close()  # process exits with 30 points not yet acknowledged

    s2 = Spool(path)
    assert len(s2) == 30
    drained: list[str] = [ln for _, ln in first]
    while batch := s2.peek(7):
        drained.extend(ln for _, ln in batch)
        s2.ack([i for i, _ in batch])
    assert drained == lines(0, 50)  # every point once, in order
    assert len(s2) == 0 and s2.peek(10) == []
    s2.close()
    assert len(Spool(path)) == 0


def test_unacknowledged_batch_is_not_lost_when_the_process_dies(tmp_path):
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    s.append(lines(0, 5))
    s.peek(5)  # sent, but the acknowledgement never came back
    del s  # no close(): the committed points are on disk anyway
    assert [ln for _, ln in Spool(path).peek(10)] == lines(0, 5)


def test_uses_wal(tmp_path):
    Spool(tmp_path / "spool.sqlite")
    mode = sqlite3.connect(tmp_path / "spool.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_cap_drops_oldest_and_counts_them_persistently(tmp_path):
    path = tmp_path / "spool.sqlite"
    s = Spool(path, max_points=10)
    s.append(lines(0, 8))
    s.append(lines(8, 13))  # 3 over the cap
    assert len(s) == 10
    assert [ln for _, ln in s.peek(100)] == lines(3, 13)
    assert s.stats().dropped == 3
    s.close()
    s2 = Spool(path, max_points=10)
    s2.append(lines(13, 14))
    assert s2.stats().dropped == 4
    assert [ln for _, ln in s2.peek(1)] == lines(4, 5)


def test_a_lower_cap_on_reopen_trims_the_oldest(tmp_path):
    path = tmp_path / "spool.sqlite"
    Spool(path).append(lines(0, 20))
    s = Spool(path, max_points=5)
    s.append(lines(20, 21))
    assert [ln for _, ln in s.peek(100)] == lines(16, 21)
    assert s.stats().dropped == 16


def test_reject_moves_points_aside_with_reason(tmp_path):
    s = Spool(tmp_path / "spool.sqlite")
    s.append(lines(0, 3))
    batch = s.peek(2)
    s.reject(batch, "HTTP 400: field type conflict", at_ms=1)
    assert len(s) == 1
    assert s.stats().rejected == 2
    assert s.rejected_points() == [(ln, "HTTP 400: field type conflict") for ln in reversed(lines(0, 2))]


def test_empty_lines_and_bad_cap():
    with pytest.raises(ValueError):
        Spool(":memory:", max_points=0)


def test_empty_append_stores_nothing(tmp_path):
    s = Spool(tmp_path / "spool.sqlite")
    assert s.append([]) == 0 and s.append(["", ""]) == 0
    assert len(s) == 0
