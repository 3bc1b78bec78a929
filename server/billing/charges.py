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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from .errors import BillingError
from .money import div_half_up
from .rates import RateCard

DEFAULT_TZ = "Africa/Dakar"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


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


def to_utc(t: object) -> dt.datetime:
    """UTC epoch ms or a datetime (naive is taken as UTC) -> aware UTC datetime."""
    if isinstance(t, dt.datetime):
        return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    if isinstance(t, int) and not isinstance(t, bool):
        return EPOCH + dt.timedelta(milliseconds=t)
    raise TypeError(f"not a time: {t!r}")


def _ms(t: dt.datetime) -> int:
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def local_start_date(session: SessionLike, tz: str = DEFAULT_TZ) -> dt.date:
    """The session's start date in the site's local time: it picks the rate card and the
    billing period."""
    return to_utc(session.start).astimezone(ZoneInfo(tz)).date()


def measured_seconds(session: SessionLike, basis: str) -> int:
    if session.end is None:
        raise BillingError("billing.error.session_open", session=session.id)
    start, end = to_utc(session.start), to_utc(session.end)
    badge_ms = max(0, _ms(end) - _ms(start))
    if basis == "badge":
        return badge_ms // 1000
    run = session.run_ms or 0
    if run < 0:
        raise BillingError("billing.error.negative_duration", value=run)
    return min(run, badge_ms) // 1000


def charge_for(
    session: SessionLike, card: RateCard, member: bool, tz: str = DEFAULT_TZ
) -> ChargeLine:
    """One charge line for a closed session, explaining itself."""
    zone = ZoneInfo(tz)
    secs = measured_seconds(session, card.basis)
    minutes = billed_minutes(secs, card)
    rate = card.price_per_hour(member)
    return ChargeLine(
        session_id=str(session.id),
        machine=session.machine,
        start_local=to_utc(session.start).astimezone(zone).isoformat(timespec="seconds"),
        end_local=to_utc(session.end).astimezone(zone).isoformat(timespec="seconds"),
        basis=card.basis,
        measured_seconds=secs,
        billed_minutes=minutes,
        rate_per_hour=rate,
        amount=amount_for(minutes, rate),
        currency=card.currency,
        member=member,
        rate_card_id=card.id,
    )
