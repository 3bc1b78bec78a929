"""Availability points for the dashboards: every AVAILABILITY_EVERY_S the server recomputes
today's and yesterday's availability per machine and hands the points to the InfluxDB writer
(rewriting a day overwrites its point, so running often is safe). Off when telemetry is off."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from ..availability import availability_lines, site_availability
from ..background import every
from ..models import Site

AVAILABILITY_EVERY_S = 300.0


def write_availability(db: DbSession, now: dt.datetime, writer: Any) -> int:
    """Submit yesterday's and today's availability of every site; returns the point count."""
    lines: list[str] = []
    for site in db.scalars(select(Site)):
        tz = ZoneInfo(site.tz)
        today = now.astimezone(tz).date()
        days = site_availability(db, site.code, today - dt.timedelta(days=1), today,
                                 now_ms=int(now.timestamp() * 1000))
        lines += availability_lines(days, {site.code: tz})
    if lines:
        writer.submit_lines(lines)
    return len(lines)


@every(AVAILABILITY_EVERY_S)
def availability_to_influx(db: DbSession, now: dt.datetime) -> None:
    from ..telemetry.hooks import writer

    w = writer()
    if w is not None:
        write_availability(db, now, w)
