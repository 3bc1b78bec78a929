"""Pure time helpers: UTC epoch milliseconds in storage, the site's local time on display."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.timezone.utc


def zone(tz: str | None, fallback: str = "Africa/Dakar") -> dt.tzinfo:
    for name in (tz, fallback):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return UTC


def is_valid_tz(tz: str) -> bool:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def ms_to_utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, UTC)


def utc_iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return ms_to_utc(ms).isoformat(timespec="seconds").replace("+00:00", "Z")


def local_iso(ms: int | None, tz: dt.tzinfo) -> str | None:
    if ms is None:
        return None
    return ms_to_utc(ms).astimezone(tz).isoformat(timespec="seconds")


def to_ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def bound_ms(value: dt.date | dt.datetime | None, tz: dt.tzinfo, *, end: bool) -> int | None:
    """A filter bound in epoch ms. A date means the site-local day: ``from`` is its start,
    ``to`` is inclusive (the next day's start, exclusive). A naive datetime is site-local."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        return to_ms(value)
    day = value + dt.timedelta(days=1) if end else value
    return to_ms(dt.datetime.combine(day, dt.time(0), tz))


def hours(ms: int) -> float:
    return round(ms / 3_600_000, 2)


def minutes(ms: int) -> float:
    return round(ms / 60_000, 1)
