"""Telemetry's part in ingestion: every newly stored event is handed to the InfluxDB writer
after the commit (the writer spools on disk and never blocks ingestion). Off unless
CRP_INFLUX_MODE is v1 or v2."""

from __future__ import annotations

import atexit
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from crp_common.events import Event

from ..ingest import Ingested, on_committed
from ..models import Machine
from .writer import TelemetryWriter, make_writer

_lock = threading.Lock()
_writer: TelemetryWriter | None = None
_started = False


def writer() -> TelemetryWriter | None:
    global _writer, _started
    with _lock:
        if not _started:
            _started = True
            _writer = make_writer()
            if _writer is not None:
                atexit.register(_writer.close)
        return _writer


@on_committed
def send_to_influx(db: DbSession, done: Ingested) -> None:
    w = writer()
    if w is None:
        return
    types = dict(db.execute(select(Machine.id, Machine.type).where(Machine.site == done.site)).all())
    events = []
    for r in done.events:
        events.append(Event(source=r["source"], boot=r["boot"], seq=r["seq"], kind=r["kind"], site=r["site"],
                            machine=r["machine"], t=r["t_ms"], body=r["body"], skew_ms=r.get("skew_ms")))
    w.submit(events, machine_types=types)
