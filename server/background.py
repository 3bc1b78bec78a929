"""Periodic work inside the server process (maintenance calendar and escalation, notification
delivery...). Parts register jobs with :func:`every` from their ``hooks`` module; the app's
lifespan runs them in one thread, each job in its own database session. Time comes from the
server's clock (CRP_CLOCK), so a demo on an accelerated clock escalates in simulated time."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from typing import Callable

from sqlalchemy.orm import Session as DbSession, sessionmaker

from crp_common.clock import Clock, clock_from_spec

log = logging.getLogger("crp.server.background")

TICK_S = 1.0
Job = Callable[[DbSession, dt.datetime], None]
_JOBS: list[tuple[float, Job]] = []


def every(seconds: float) -> Callable[[Job], Job]:
    """Register ``fn(db, now)`` to run every ``seconds`` (real seconds)."""
    def deco(fn: Job) -> Job:
        if all(f is not fn for _, f in _JOBS):
            _JOBS.append((seconds, fn))
        return fn
    return deco


_CLOCKS: dict[str, Clock] = {}


def server_clock() -> Clock:
    spec = os.environ.get("CRP_CLOCK") or "system"
    c = _CLOCKS.get(spec)
    if c is None:
        c = _CLOCKS[spec] = clock_from_spec(spec)
    return c


class Background:
    def __init__(self, sessions: sessionmaker, clock: Clock | None = None):
        self.sessions = sessions
        self.clock = clock or server_clock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="server-background", daemon=True)
        self.last: dict[int, float] = {}

    def start(self) -> "Background":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)

    def run_due(self) -> None:
        for i, (period, fn) in enumerate(list(_JOBS)):
            if time.monotonic() - self.last.get(i, -1e9) < period:
                continue
            self.last[i] = time.monotonic()
            now = dt.datetime.fromtimestamp(self.clock.now(), dt.timezone.utc)
            with self.sessions() as db:
                try:
                    fn(db, now)
                    db.commit()
                except Exception:  # noqa: BLE001 - one failing job never stops the others
                    db.rollback()
                    log.exception("background job %s failed", getattr(fn, "__name__", fn))

    def _run(self) -> None:
        while not self.stop_event.wait(TICK_S):
            self.run_due()
