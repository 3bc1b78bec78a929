"""Charges: from a closed session and its rate card to one self-explaining charge line.

Rules (see docs/billing.md for the worked example):

1. Measured time, counted in whole seconds (fractions of a second are dropped): for the
   ``badge`` basis, end - start of the session; for the ``run`` basis, the motor run time the
   current sensor measured during the session.
2. Free grace: a session measured at ``grace_minutes`` or less bills 0 minutes.
3. Rounding to the card's increment: ``up`` (any started increment is billed), ``nearest``
   (half an increment or more goes up) or ``down``.
4. Minimum: a billed session bills at least ``minimum_minutes``.
5. Amount = billed minutes x price per hour / 60, rounded half-up to the currency's minor unit
   (a whole franc for XOF), integers only.
6. Energy, when the card prices it (``price_per_kwh`` > 0) and the machine is metered: the
   session's energy in whole Wh (rounded half-up) x price per kWh / 1000, rounded half-up,
   added to the line. Grace and minimum apply to time only. A machine without a meter bills
   no energy (its line says so with ``energy_wh`` None).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from .errors import BillingError
from .money import div_half_up
from .rates import RateCard

DEFAULT_TZ = "Africa/Dakar"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
HOUR_MS = 3_600_000
DAY_S = 86_400
_EPOCH_ORDINAL = EPOCH.date().toordinal()
_ONE_MS = dt.timedelta(milliseconds=1)
_ONE_S = dt.timedelta(seconds=1)
LOCAL_CLOCK_CACHE_LIMIT = 200_000  # memoised hours per zone before a memo is reset


class SessionLike(Protocol):
    """What billing reads from a session (the pure :class:`SessionFacts` or an ORM row)."""

    id: str
    machine: str
    start: object  # UTC epoch ms (int) or datetime (naive = UTC)
    end: object | None
    run_ms: int | None


@dataclass(frozen=True)
class SessionFacts:
    """A closed session as billing sees it: times as UTC epoch milliseconds."""

    id: str
    machine: str
    start: int
    end: int | None
    run_ms: int | None = 0
    artisan: int | None = None
    machine_type: str | None = None
    energy_wh: float | None = None  # metered energy; None: the machine has no meter


@dataclass(frozen=True)
class ChargeLine:
    session_id: str
    machine: str
    start_local: str  # ISO 8601 with the site's UTC offset
    end_local: str
    basis: str
    measured_seconds: int
    billed_minutes: int
    rate_per_hour: int  # minor units
    amount: int  # minor units
    currency: str
    member: bool
    rate_card_id: int | None = None
    energy_wh: int | None = None  # whole Wh metered; None: no meter
    price_per_kwh: int = 0  # minor units
    energy_amount: int = 0  # minor units, included in ``amount``

    @property
    def time_amount(self) -> int:
        return self.amount - self.energy_amount

    @property
    def measured_minutes(self) -> int:
        """Whole minutes measured (the seconds are in :attr:`measured_seconds`)."""
        return self.measured_seconds // 60

    @property
    def measured_display(self) -> str:
        """``61 min 05 s``: what a manager reads out to the artisan."""
        m, s = divmod(self.measured_seconds, 60)
        return f"{m} min {s:02d} s"

    def as_dict(self) -> dict[str, object]:
        return {
            "session_id": self.session_id,
            "machine": self.machine,
            "start_local": self.start_local,
            "end_local": self.end_local,
            "basis": self.basis,
            "measured_seconds": self.measured_seconds,
            "measured_minutes": self.measured_minutes,
            "billed_minutes": self.billed_minutes,
            "rate_per_hour": self.rate_per_hour,
            "amount": self.amount,
            "currency": self.currency,
            "member": self.member,
            "energy_wh": self.energy_wh,
            "price_per_kwh": self.price_per_kwh,
            "energy_amount": self.energy_amount,
        }


def billed_minutes(measured_seconds: int, card: RateCard) -> int:
    """Minutes billed for ``measured_seconds`` under ``card`` (rules 2-4 above)."""
    if measured_seconds < 0:
        raise BillingError("billing.error.negative_duration", value=measured_seconds)
    if measured_seconds <= card.grace_minutes * 60:
        return 0
    inc_s = card.increment_minutes * 60
    if card.rounding == "up":
        n = -(-measured_seconds // inc_s)
    elif card.rounding == "down":
        n = measured_seconds // inc_s
    else:  # nearest, half an increment goes up
        n = (2 * measured_seconds + inc_s) // (2 * inc_s)
    return max(n * card.increment_minutes, card.minimum_minutes)


def amount_for(minutes: int, price_per_hour: int) -> int:
    """``minutes x price_per_hour / 60`` rounded half-up to the minor unit."""
    return div_half_up(minutes * price_per_hour, 60)


def metered_wh(energy_wh: float | None) -> int | None:
    """A session's metered energy in whole Wh, rounded half-up; None for no meter."""
    if energy_wh is None:
        return None
    if isinstance(energy_wh, bool) or not isinstance(energy_wh, (int, float)) or not math.isfinite(energy_wh) \
            or energy_wh < 0:
        raise BillingError("billing.error.bad_energy", value=energy_wh)
    return math.floor(energy_wh + 0.5)


def energy_amount_for(wh: int | None, price_per_kwh: int) -> int:
    """``wh x price_per_kwh / 1000`` rounded half-up to the minor unit (0 without a meter)."""
    if not wh or not price_per_kwh:
        return 0
    return div_half_up(wh * price_per_kwh, 1000)


def to_utc(t: object) -> dt.datetime:
    """UTC epoch ms or a datetime (naive is taken as UTC) -> aware UTC datetime."""
    if isinstance(t, dt.datetime):
        return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    if isinstance(t, int) and not isinstance(t, bool):
        return EPOCH + dt.timedelta(milliseconds=t)
    raise TypeError(f"not a time: {t!r}")


def _ms(t: dt.datetime) -> int:
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


class LocalClock:
    """UTC epoch milliseconds -> the site's local date and ISO 8601 text, with integer
    arithmetic: the zone's UTC offset is looked up once per UTC hour and the text of each
    local hour is built once. The results are exactly those of
    ``to_utc(ms).astimezone(ZoneInfo(tz))`` (``.date()``, ``.isoformat(timespec="seconds")``);
    an hour in which the offset changes falls back to that conversion."""

    def __init__(self, tz: str):
        self.zone = ZoneInfo(tz)
        # UTC hour -> (offset ms, the 3600 texts "MM:SS+HH:MM"), or () if the offset changes
        self._hours: dict[int, tuple] = {}
        self._tails: dict[str, tuple[str, ...]] = {}  # offset text -> the 3600 texts
        self._local_hours: dict[int, str] = {}  # local hour -> "YYYY-MM-DDTHH:"

    def _hour(self, ms: int) -> tuple:
        hour = ms // HOUR_MS
        entry = self._hours.get(hour)
        if entry is not None:
            return entry
        if len(self._hours) >= LOCAL_CLOCK_CACHE_LIMIT:
            self._hours.clear()
        first = (EPOCH + dt.timedelta(milliseconds=hour * HOUR_MS)).astimezone(self.zone)
        last = (EPOCH + dt.timedelta(milliseconds=hour * HOUR_MS + HOUR_MS - 1)).astimezone(
            self.zone
        )
        off = first.utcoffset()
        entry = ()
        if off is not None and off == last.utcoffset() and off % _ONE_S == dt.timedelta(0):
            text = first.isoformat(timespec="seconds")[19:]
            tails = self._tails.get(text)
            if tails is None:
                tails = self._tails[text] = tuple(
                    f"{sec // 60:02d}:{sec % 60:02d}{text}" for sec in range(3600)
                )
            entry = (off // _ONE_MS, tails)
        self._hours[hour] = entry
        return entry

    def _local_hour_text(self, local_hour: int) -> str:
        if len(self._local_hours) >= LOCAL_CLOCK_CACHE_LIMIT:
            self._local_hours.clear()
        day, h = divmod(local_hour, 24)
        d = dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
        text = self._local_hours[local_hour] = f"{d}T{h:02d}:"
        return text

    def local_day(self, ms: int) -> int:
        """Local date of ``ms`` as days since 1970-01-01 (a cheap cache key)."""
        entry = self._hours.get(ms // HOUR_MS) or self._hour(ms)
        if not entry:
            return self.date(ms).toordinal() - _EPOCH_ORDINAL
        return (ms + entry[0]) // 1000 // DAY_S

    def span(self, start: int, end: int) -> tuple[int, str, str]:
        """``(local_day(start), iso(start), iso(end))`` in one call: what a billing run needs
        of each session (it saves a call and a look-up per session)."""
        hours = self._hours
        a = hours.get(start // HOUR_MS) or self._hour(start)
        b = hours.get(end // HOUR_MS) or self._hour(end)
        if not (a and b):
            return self.local_day(start), self.iso(start), self.iso(end)
        heads = self._local_hours
        local_s = (start + a[0]) // 1000
        hour, sec = divmod(local_s, 3600)
        start_text = (heads.get(hour) or self._local_hour_text(hour)) + a[1][sec]
        hour, sec = divmod((end + b[0]) // 1000, 3600)
        return local_s // DAY_S, start_text, (heads.get(hour) or self._local_hour_text(hour)) + b[1][sec]

    def date(self, ms: int) -> dt.date:
        entry = self._hours.get(ms // HOUR_MS) or self._hour(ms)
        if not entry:
            return to_utc(ms).astimezone(self.zone).date()
        return dt.date.fromordinal(_EPOCH_ORDINAL + (ms + entry[0]) // 1000 // DAY_S)

    def iso(self, ms: int) -> str:
        """``2026-03-10T09:00:00+00:00``: local time to the second (fraction dropped)."""
        entry = self._hours.get(ms // HOUR_MS) or self._hour(ms)
        if not entry:
            return to_utc(ms).astimezone(self.zone).isoformat(timespec="seconds")
        local_hour, sec = divmod((ms + entry[0]) // 1000, 3600)
        head = self._local_hours.get(local_hour) or self._local_hour_text(local_hour)
        return head + entry[1][sec]


@lru_cache(maxsize=64)
def local_clock(tz: str = DEFAULT_TZ) -> LocalClock:
    """The shared :class:`LocalClock` of a time zone."""
    return LocalClock(tz)


def _is_ms(t: object) -> bool:
    return type(t) is int  # noqa: E721 (bool is not a time)


def local_start_date(session: SessionLike, tz: str = DEFAULT_TZ) -> dt.date:
    """The session's start date in the site's local time: it picks the rate card and the
    billing period."""
    if _is_ms(session.start):
        return local_clock(tz).date(session.start)
    return to_utc(session.start).astimezone(ZoneInfo(tz)).date()


def measured_seconds(session: SessionLike, basis: str) -> int:
    if session.end is None:
        raise BillingError("billing.error.session_open", session=session.id)
    start, end = session.start, session.end
    if not (_is_ms(start) and _is_ms(end)):
        start, end = _ms(to_utc(start)), _ms(to_utc(end))
    return measured_seconds_ms(start, end, session.run_ms, basis)


def measured_seconds_ms(start: int, end: int, run_ms: int | None, basis: str) -> int:
    """:func:`measured_seconds` of a closed session given as UTC epoch milliseconds."""
    badge_ms = max(0, end - start)
    if basis == "badge":
        return badge_ms // 1000
    run = run_ms or 0
    if run < 0:
        raise BillingError("billing.error.negative_duration", value=run)
    return min(run, badge_ms) // 1000


def _local_iso(t: object, clock: LocalClock) -> str:
    if _is_ms(t):
        return clock.iso(t)
    return to_utc(t).astimezone(clock.zone).isoformat(timespec="seconds")


def charge_for(
    session: SessionLike, card: RateCard, member: bool, tz: str = DEFAULT_TZ
) -> ChargeLine:
    """One charge line for a closed session, explaining itself."""
    clock = local_clock(tz)
    secs = measured_seconds(session, card.basis)
    minutes = billed_minutes(secs, card)
    rate = card.price_per_hour(member)
    wh = metered_wh(getattr(session, "energy_wh", None))
    energy = energy_amount_for(wh, card.price_per_kwh)
    return ChargeLine(
        session_id=str(session.id),
        machine=session.machine,
        start_local=_local_iso(session.start, clock),
        end_local=_local_iso(session.end, clock),
        basis=card.basis,
        measured_seconds=secs,
        billed_minutes=minutes,
        rate_per_hour=rate,
        amount=amount_for(minutes, rate) + energy,
        currency=card.currency,
        member=member,
        rate_card_id=card.id,
        energy_wh=wh,
        price_per_kwh=card.price_per_kwh,
        energy_amount=energy,
    )
