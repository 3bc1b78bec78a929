"""The gateway's durable store: one SQLite file (WAL) holding

- ``spool``: every accepted event, node or gateway, unique on ``(source, boot, seq)``, with a
  ``forwarded`` flag. Rows stay after forwarding for SPOOL_RETENTION_MS so replays are still
  recognised as duplicates;
- ``dead_letters``: every refused MQTT message with its topic, raw payload and reason;
- ``anchors``: the per-boot clock anchors of :mod:`gateway.stamping`;
- ``kv``: the gateway's boot counter, the authorization snapshot and the tracker checkpoint;
- ``counters``: duplicates and refusals by reason.

Writes come from one writer thread in batches (one transaction, one fsync per batch); the
forwarder reads through its own connection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

SPOOL_RETENTION_MS = 14 * 24 * 3600 * 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    boot INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    machine TEXT,
    t INTEGER NOT NULL,
    body TEXT NOT NULL,
    skew_ms INTEGER,
    received_ms INTEGER NOT NULL,
    forwarded INTEGER NOT NULL DEFAULT 0,
    UNIQUE (source, boot, seq)
);
CREATE INDEX IF NOT EXISTS spool_pending ON spool (id) WHERE forwarded = 0;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS anchors (
    node TEXT NOT NULL,
    boot INTEGER NOT NULL,
    anchor_ms INTEGER NOT NULL,
    max_seq INTEGER NOT NULL,
    up_at_max_seq INTEGER NOT NULL,
    PRIMARY KEY (node, boot)
);
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""

_EVENT_COLUMNS = "(source, boot, seq, kind, machine, t, body, skew_ms, received_ms)"
# Rows per INSERT statement: a batch is cut into these sizes (largest first), so a handful of
# statements, each prepared once and cached, carry any batch (512 x 9 parameters stay far below
# SQLite's limit of 32766).
CHUNK_ROWS = (512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
INSERT_EVENTS = {k: f"INSERT OR IGNORE INTO spool {_EVENT_COLUMNS} VALUES "
                    + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * k) for k in CHUNK_ROWS}

EventRow = tuple[str, int, int, str, str | None, int, str, int | None, int]
DeadRow = tuple[int, str, bytes, str, str]


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed batch survives a power cut, not only a crash. One fsync per batch.
    db.execute("PRAGMA synchronous=FULL")
    return db


class Spool:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = connect(self.path)
        self.db.executescript(SCHEMA)
        # An older SQLite may allow fewer parameters per statement (999 before 3.32).
        limit = self.db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._chunk_rows = tuple(k for k in CHUNK_ROWS if k * 9 <= limit)
        self._read = connect(self.path)
        self._read_lock = threading.Lock()

    def close(self) -> None:
        self.db.close()
        self._read.close()

    # ------------------------------------------------------------------ kv

    def get(self, k: str) -> str | None:
        row = self.db.execute("SELECT v FROM kv WHERE k = ?", (k,)).fetchone()
        return row[0] if row else None

    def put(self, k: str, v: str) -> None:
        self.db.execute("INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", (k, v))

    def next_boot(self) -> int:
        boot = int(self.get("boot") or 0) + 1
        self.put("boot", str(boot))
        return boot

    # ------------------------------------------------------------------ writing

    def write(self, events: list[EventRow], dead: list[DeadRow], anchors: Iterable[tuple],
              counters: dict[str, int], checkpoint: str | None = None) -> int:
        """One transaction. Returns how many events were new (the rest were duplicates)."""
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            before = self.db.total_changes
            if events:
                self._insert_events(cur, events)
            inserted = self.db.total_changes - before
            dup = len(events) - inserted
            if dup:
                counters = dict(counters)
                counters["duplicate"] = counters.get("duplicate", 0) + dup
            if dead:
                cur.executemany(
                    "INSERT INTO dead_letters (received_ms, topic, payload, reason, detail) VALUES (?, ?, ?, ?, ?)",
                    dead)
            anchors = list(anchors)
            if anchors:
                cur.executemany(
                    "INSERT INTO anchors (node, boot, anchor_ms, max_seq, up_at_max_seq) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (node, boot) DO UPDATE SET anchor_ms = excluded.anchor_ms,"
                    " max_seq = excluded.max_seq, up_at_max_seq = excluded.up_at_max_seq", anchors)
            for name, n in counters.items():
                cur.execute("INSERT INTO counters (name, n) VALUES (?, ?)"
                            " ON CONFLICT (name) DO UPDATE SET n = n + excluded.n", (name, n))
            if checkpoint is not None:
                # The tracker state after every event written so far, and up to which row.
                upto = str(self._max_id(cur))
                for k, v in (("checkpoint", checkpoint), ("checkpoint_upto", upto)):
                    cur.execute("INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                                (k, v))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return inserted

    def _insert_events(self, cur: sqlite3.Cursor, events: list[EventRow]) -> None:
        """The batch's rows in order, a few multi-row INSERTs instead of one per row: SQLite then
        works without the GIL for hundreds of rows at a time (``executemany`` takes the GIL back
        after every row, queueing behind the network thread each time), and uses less CPU."""
        i, n = 0, len(events)
        for k in self._chunk_rows:
            while n - i >= k:
                chunk = events[i:i + k]
                i += k
                cur.execute(INSERT_EVENTS[k], [x for row in chunk for x in row])

    @staticmethod
    def _max_id(cur: sqlite3.Cursor) -> int:
        return int(cur.execute("SELECT COALESCE(MAX(id), 0) FROM spool").fetchone()[0])

    # ------------------------------------------------------------------ reading

    def anchors(self) -> list[tuple[str, int, int, int, int]]:
        return list(self.db.execute("SELECT node, boot, anchor_ms, max_seq, up_at_max_seq FROM anchors"))

    def recent_node_keys(self, window: int = 4096) -> list[tuple[str, int, int]]:
        """The keys of each node boot's last ``window`` messages (for duplicate detection after
        a restart), in seq order."""
        return list(self.db.execute(
            "SELECT s.source, s.boot, s.seq FROM spool s JOIN anchors a ON a.node = s.source AND a.boot = s.boot"
            " WHERE s.seq > a.max_seq - ? ORDER BY s.source, s.boot, s.seq", (window,)))

    def rows_after(self, after_id: int) -> Iterable[tuple]:
        return self.db.execute(
            "SELECT id, source, boot, seq, kind, machine, t, body FROM spool WHERE id > ? ORDER BY id", (after_id,))

    def pending(self, limit: int) -> list[tuple]:
        with self._read_lock:
            return list(self._read.execute(
                "SELECT id, source, boot, seq, kind, machine, t, body, skew_ms FROM spool"
                " WHERE forwarded = 0 ORDER BY id LIMIT ?", (limit,)))

    def mark_forwarded(self, ids: list[int]) -> None:
        with self._read_lock:
            self._read.execute("BEGIN IMMEDIATE")
            self._read.executemany("UPDATE spool SET forwarded = 1 WHERE id = ?", [(i,) for i in ids])
            self._read.execute("COMMIT")

    def pending_count(self) -> int:
        with self._read_lock:
            return int(self._read.execute("SELECT COUNT(*) FROM spool WHERE forwarded = 0").fetchone()[0])

    def count(self) -> int:
        with self._read_lock:
            return int(self._read.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def counters(self) -> dict[str, int]:
        with self._read_lock:
            return dict(self._read.execute("SELECT name, n FROM counters"))

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._read_lock:
            rows = self._read.execute(
                "SELECT id, received_ms, topic, payload, reason, detail FROM dead_letters ORDER BY id DESC LIMIT ?",
                (limit,)).fetchall()
        return [{"id": r[0], "received_ms": r[1], "topic": r[2],
                 "payload": bytes(r[3]).decode("utf-8", "backslashreplace")[:500], "reason": r[4],
                 "detail": r[5]} for r in rows]

    def dead_letter_counts(self) -> dict[str, int]:
        with self._read_lock:
            return dict(self._read.execute("SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason"))

    def prune(self, before_ms: int) -> int:
        """Forget forwarded events older than ``before_ms`` (their keys no longer needed)."""
        cur = self.db.execute("DELETE FROM spool WHERE forwarded = 1 AND received_ms < ?", (before_ms,))
        return cur.rowcount


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
