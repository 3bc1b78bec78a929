"""The telemetry writer: events -> spool -> InfluxDB, in the background.

``submit(events)`` converts the telemetry events to points and appends them to the on-disk
spool; it returns at once and never raises, so it can sit in the ingest path without ever
slowing a badge decision or an ingestion. A background thread drains the spool in batches of
:data:`BATCH_SIZE` (or what is there every :data:`FLUSH_INTERVAL_S`), deleting points only
once InfluxDB has acknowledged them.

When InfluxDB is unreachable, slow or refusing (401/403/404/5xx), the thread retries with
exponential backoff from :data:`RETRY_INITIAL_S` up to :data:`RETRY_MAX_S` and logs ONE
warning for the outage, then one info line when InfluxDB accepts writes again. Points
refused for good (400: malformed, field type conflict) are kept in the spool's ``rejected``
table with InfluxDB's reason.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

from crp_common.events import Event

from .backends import Backend, V1Backend, V2Backend, WriteFailed, WriteRefused
from .points import events_to_points
from .settings import InfluxSettings
from .spool import Spool

__all__ = ["TelemetryWriter", "WriterStats", "make_writer", "V1Backend", "V2Backend",
           "WriteFailed", "WriteRefused", "Backend"]

log = logging.getLogger(__name__)

RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 60.0
BATCH_SIZE = 5000
FLUSH_INTERVAL_S = 1.0
CLOSE_FLUSH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class WriterStats:
    written: int  # points acknowledged by InfluxDB
    spooled: int  # points appended to the spool by this writer
    pending: int  # points in the spool now
    dropped: int  # oldest points dropped at the spool cap (persisted across restarts)
    rejected: int  # points InfluxDB refused for good, kept in the spool's rejected table
    lost: int  # points that could not even be spooled (disk full, spool error)
    skipped: int  # telemetry events with a malformed body, not turned into points
    outages: int  # times InfluxDB went from reachable to unreachable/refusing
    failed_attempts: int  # write attempts that failed (one outage has many)
    in_outage: bool


class TelemetryWriter:
    def __init__(self, backend: Backend, spool: Spool, *, start: bool = True,
                 machine_types: Mapping[str, str] | None = None):
        self.backend = backend
        self.spool = spool
        self._machine_types: dict[str, str] = dict(machine_types or {})
        self._cv = threading.Condition()
        self._stop = False
        self._kick = 0  # bumped by flush(): one immediate attempt, even during backoff
        self._written = self._spooled = self._lost = self._skipped = 0
        self._outages = self._failed = 0
        self._in_outage = False
        self._outage_since = 0.0
        self._spool_broken = False
        self._thread = threading.Thread(target=self._run, name="telemetry-writer", daemon=True)
        if start:
            self.start()

    # ----------------------------------------------------------------- producer side

    def start(self) -> "TelemetryWriter":
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def set_machine_types(self, machine_types: Mapping[str, str]) -> None:
        """Machine id -> machine type, used for the ``machine_type`` tag."""
        self._machine_types = dict(machine_types)

    def submit(self, events: Iterable[Event], machine_types: Mapping[str, str] | None = None) -> int:
        """Spool the telemetry points of ``events``; returns how many were spooled. Never
        blocks on InfluxDB and never raises: a spool failure is logged and counted in ``lost``."""
        try:
            lines, skipped = events_to_points(events, machine_types or self._machine_types)
        except Exception:  # noqa: BLE001 - the ingest path must never fail because of telemetry
            log.exception("telemetry: could not convert events to points")
            return 0
        return self._spool_lines(lines, sum(skipped.values()))

    def submit_lines(self, lines: Iterable[str]) -> int:
        """Spool ready-made line-protocol points (other measurements, e.g. availability)."""
        return self._spool_lines(list(lines), 0)

    def _spool_lines(self, lines: list[str], skipped: int) -> int:
        with self._cv:
            self._skipped += skipped
        if not lines:
            return 0
        try:
            n = self.spool.append(lines)
        except Exception:  # noqa: BLE001
            with self._cv:
                self._lost += len(lines)
                first = not self._spool_broken
                self._spool_broken = True
            if first:
                log.exception("telemetry: cannot append to the spool %s; points are lost until it works",
                              self.spool.path)
            return 0
        with self._cv:
            if self._spool_broken:
                log.info("telemetry: the spool %s works again", self.spool.path)
            self._spool_broken = False
            self._spooled += n
            if len(self.spool) >= BATCH_SIZE:
                self._cv.notify_all()
        return n

    # ----------------------------------------------------------------- control

    def flush(self, timeout: float) -> bool:
        """Ask for an immediate drain and wait until the spool is empty; False on timeout
        (e.g. InfluxDB still down: the points stay spooled)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            self._kick += 1
            self._cv.notify_all()
            while len(self.spool) > 0:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cv.wait(left)
            return True

    def close(self, flush_timeout: float = CLOSE_FLUSH_TIMEOUT_S) -> None:
        """Try to drain for ``flush_timeout`` s, then stop. What is left stays spooled on disk
        and is sent by the next writer on the same spool."""
        if self._thread.is_alive() and flush_timeout > 0:
            self.flush(flush_timeout)
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        self.backend.close()
        self.spool.close()

    @property
    def stats(self) -> WriterStats:
        s = self.spool.stats()
        with self._cv:
            return WriterStats(written=self._written, spooled=self._spooled, pending=s.pending,
                               dropped=s.dropped, rejected=s.rejected, lost=self._lost,
                               skipped=self._skipped, outages=self._outages,
                               failed_attempts=self._failed, in_outage=self._in_outage)

    # ----------------------------------------------------------------- drain thread

    def _run(self) -> None:
        while True:
            with self._cv:
                kick = self._kick
                self._cv.wait_for(lambda: self._stop or self._kick != kick
                                  or len(self.spool) >= BATCH_SIZE, timeout=FLUSH_INTERVAL_S)
                if self._stop:
                    return
            try:
                self._drain()
            except Exception:  # noqa: BLE001 - the thread must outlive any bug or disk error
                log.exception("telemetry: drain failed; retrying")
                self._pause(RETRY_MAX_S)

    def _drain(self) -> None:
        delay = RETRY_INITIAL_S
        while True:
            rows = self.spool.peek(BATCH_SIZE)
            if not rows:
                with self._cv:
                    self._cv.notify_all()  # wake flush() waiters
                return
            try:
                self.backend.write([line for _, line in rows])
            except WriteRefused as e:
                self.spool.reject(rows, str(e), int(time.time() * 1000))
                self._on_success()  # InfluxDB answered: it is not an outage
                log.warning("telemetry: InfluxDB refused %d point(s), kept in the spool's rejected "
                            "table: %s", len(rows), e)
                continue
            except WriteFailed as e:
                self._on_failure(e)
                if self._pause(delay):
                    return
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.spool.ack([i for i, _ in rows])
            with self._cv:
                self._written += len(rows)
            self._on_success()
            delay = RETRY_INITIAL_S

    def _pause(self, seconds: float) -> bool:
        """Back off for ``seconds`` unless flush() kicks or close() stops; True when stopping."""
        with self._cv:
            kick = self._kick
            self._cv.wait_for(lambda: self._stop or self._kick != kick, timeout=seconds)
            return self._stop

    def _on_failure(self, err: Exception) -> None:
        with self._cv:
            self._failed += 1
            if self._in_outage:
                log.debug("telemetry: still failing: %s", err)
                return
            self._in_outage = True
            self._outages += 1
            self._outage_since = time.monotonic()
            pending = len(self.spool)
        log.warning("telemetry: InfluxDB (%s %s) is not accepting writes: %s; points are kept in "
                    "the spool (%d pending) and retried", self.backend.name,
                    getattr(self.backend, "url", ""), err, pending)

    def _on_success(self) -> None:
        with self._cv:
            if not self._in_outage:
                return
            self._in_outage = False
            lasted = time.monotonic() - self._outage_since
            failed = self._failed
        log.info("telemetry: InfluxDB accepts writes again after %.0f s (%d failed attempts so far)",
                 lasted, failed)


def make_backend(settings: InfluxSettings) -> Backend:
    if settings.mode == "v1":
        return V1Backend(settings.url, settings.db, username=settings.username,
                         password=settings.password.get_secret_value(),
                         retention_policy=settings.retention_policy, timeout_s=settings.timeout_s)
    if settings.mode == "v2":
        return V2Backend(settings.url, settings.token.get_secret_value(), settings.org,
                         settings.bucket, timeout_s=settings.timeout_s)
    raise ValueError(f"no backend for mode {settings.mode!r}")


def make_writer(settings: InfluxSettings | None = None) -> TelemetryWriter | None:
    """The writer the server calls from its ingest path, or None when CRP_INFLUX_MODE=off."""
    settings = settings if settings is not None else InfluxSettings()
    if settings.mode == "off":
        return None
    spool = Spool(settings.spool, max_points=settings.spool_max_points)
    return TelemetryWriter(make_backend(settings), spool)
