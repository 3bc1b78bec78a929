"""A durable on-disk spool of line-protocol points (one SQLite file in WAL mode).

- ``append(lines)`` is one small transaction: cheap, never waits on the network.
- ``peek(n)`` returns the oldest ``n`` points with their row ids; ``ack(ids)`` deletes them.
  A point leaves the spool only once InfluxDB has acknowledged it, so a crash or a refused
  write loses nothing. Each point is stored once and deleted once it is acknowledged, so
  draining never sends it again after that; a point sent but not yet acknowledged when the
  process died is sent again, which InfluxDB absorbs (same series and timestamp overwrite).
- Points a server refuses for good (a 400: bad point, field type conflict) are moved to the
  ``rejected`` table with the reason, never silently dropped.
- Bounded: past ``max_points`` the OLDEST points are dropped to make room for new ones and
  counted in ``dropped`` (persisted). Recent telemetry is worth more than old samples on a
  gateway-sized disk; the cap is CRP_INFLUX_SPOOL_MAX_POINTS (default 2,000,000 points,
  roughly 200 MB).

One process owns a spool file at a time; the object is thread-safe within that process.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

DEFAULT_MAX_POINTS = 2_000_000
# WAL with synchronous=NORMAL survives a process crash without losing committed points; on a
# power cut only the last few commits may be lost, never the file. Telemetry samples allow it.
SYNCHRONOUS = "NORMAL"
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    line   TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class SpoolStats:
    pending: int
    dropped: int
    rejected: int


class Spool:
    def __init__(self, path: str | Path, max_points: int = DEFAULT_MAX_POINTS):
        if max_points < 1:
            raise ValueError("max_points must be at least 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_points = max_points
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        self._db.executescript(_SCHEMA)
        self._pending = self._db.execute("SELECT COUNT(*) FROM points").fetchone()[0]

    # ----------------------------------------------------------------- writing

    def append(self, lines: Iterable[str]) -> int:
        """Store points; returns how many were stored. Drops the oldest past the cap."""
        rows = [(ln,) for ln in lines if ln]
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO points(line) VALUES (?)", rows)
                excess = self._pending + len(rows) - self.max_points
                if excess > 0:
                    self._db.execute(
                        "DELETE FROM points WHERE id IN (SELECT id FROM points ORDER BY id LIMIT ?)",
                        (excess,))
                    self._bump("dropped", excess)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._pending += len(rows) - max(excess, 0)
        return len(rows)

    # ----------------------------------------------------------------- draining

    def peek(self, n: int) -> list[tuple[int, str]]:
        """The oldest ``n`` points as ``(id, line)``, left in the spool until acknowledged."""
        with self._lock:
            return self._db.execute("SELECT id, line FROM points ORDER BY id LIMIT ?", (n,)).fetchall()

    def ack(self, ids: Sequence[int]) -> None:
        """Delete points InfluxDB has acknowledged."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.executemany("DELETE FROM points WHERE id = ?", [(i,) for i in ids])
                removed = cur.rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._pending -= removed

    def reject(self, rows: Sequence[tuple[int, str]], reason: str, at_ms: int) -> None:
        """Move points a server refused for good to the ``rejected`` table with the reason."""
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO rejected(line, reason, at_ms) VALUES (?, ?, ?)",
                                     [(line, reason[:500], at_ms) for _, line in rows])
                cur = self._db.executemany("DELETE FROM points WHERE id = ?", [(i,) for i, _ in rows])
                removed = cur.rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._pending -= removed

    # ----------------------------------------------------------------- inspection

    def __len__(self) -> int:
        return self._pending

    def rejected_points(self, limit: int = 100) -> list[tuple[str, str]]:
        """``(line, reason)`` of the most recently rejected points."""
        with self._lock:
            return self._db.execute(
                "SELECT line, reason FROM rejected ORDER BY id DESC LIMIT ?", (limit,)).fetchall()

    def stats(self) -> SpoolStats:
        with self._lock:
            dropped = self._counter("dropped")
            rejected = self._db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
            return SpoolStats(pending=self._pending, dropped=dropped, rejected=rejected)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ----------------------------------------------------------------- helpers

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, by))
