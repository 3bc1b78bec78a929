"""Billing periods: a calendar month ``YYYY-MM`` in the site's local time.

A session belongs to the period in which it STARTED (site local time), so a session running
across midnight on the last day of the month is billed once, in the month it started."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .errors import BillingError

_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def last_day(self) -> dt.date:
        return self.next().first_day - dt.timedelta(days=1)

    def next(self) -> "Period":
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def utc_bounds(self, tz: str) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) of the period in UTC: local midnight of the 1st to local midnight of
        the next month's 1st."""
        zone = ZoneInfo(tz)
        start = dt.datetime.combine(self.first_day, dt.time(0), zone)
        end = dt.datetime.combine(self.next().first_day, dt.time(0), zone)
        return start.astimezone(dt.UTC), end.astimezone(dt.UTC)

    def contains(self, day: dt.date) -> bool:
        return (day.year, day.month) == (self.year, self.month)


def parse_period(text: str) -> Period:
    m = _PERIOD_RE.match((text or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1970:
        raise BillingError("billing.error.bad_period", period=text)
    return Period(int(m.group(1)), int(m.group(2)))


def period_of(day: dt.date) -> Period:
    return Period(day.year, day.month)
