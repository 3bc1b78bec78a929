"""Rate cards: what an hour of machine time (and, optionally, a kWh of metered energy) costs,
from which date, for whom.

A card applies to one machine (``machine``) or to every machine of a type (``machine_type``);
for a given session the machine's own card wins over its type's card. Cards of the same scope
may not overlap in time: a price change closes the old card (``effective_to``, inclusive) and
opens a new one the next day, so history is kept and every session has at most one price.
The card is chosen by the date the session STARTED in the site's local time.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Literal

from .errors import RateCardError
from .money import CURRENCY_DECIMALS, DEFAULT_CURRENCY

Basis = Literal["badge", "run"]
Rounding = Literal["up", "nearest", "down"]
BASES: tuple[str, ...] = ("badge", "run")
ROUNDINGS: tuple[str, ...] = ("up", "nearest", "down")
MAX_INCREMENT_MINUTES = 24 * 60
MAX_PRICE_PER_HOUR = 10**12  # minor units; a sanity bound, not a business rule (also per kWh)


@dataclass(frozen=True)
class RateCard:
    price_per_hour_member: int
    price_per_hour_non_member: int
    effective_from: dt.date
    machine: str | None = None
    machine_type: str | None = None
    currency: str = DEFAULT_CURRENCY
    basis: Basis = "badge"
    increment_minutes: int = 15
    rounding: Rounding = "up"
    minimum_minutes: int = 0
    grace_minutes: int = 0
    effective_to: dt.date | None = None  # inclusive; None = until further notice
    id: int | None = None
    # Energy metered during the session (plugs, meters), minor units per kWh; 0 = not priced.
    # Billed on top of the time, members and non-members alike (it is a cost passed on).
    price_per_kwh: int = 0

    def __post_init__(self) -> None:
        validate_card(self)

    @property
    def scope(self) -> tuple[str, str]:
        """``("machine", id)`` or ``("type", code)``."""
        if self.machine is not None:
            return ("machine", self.machine)
        return ("type", self.machine_type or "")

    def price_per_hour(self, member: bool) -> int:
        return self.price_per_hour_member if member else self.price_per_hour_non_member

    def applies_on(self, day: dt.date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_card(c: RateCard) -> None:
    """Raise :class:`RateCardError` (with a translation key) on the first problem found."""
    if (c.machine is None) == (c.machine_type is None):
        raise RateCardError("billing.error.card_scope")
    for name in ("price_per_hour_member", "price_per_hour_non_member", "price_per_kwh"):
        v = getattr(c, name)
        if not _is_int(v):
            raise RateCardError("billing.error.price_not_integer", field=name)
        if v < 0:
            raise RateCardError("billing.error.negative_price", field=name, value=v)
        if v > MAX_PRICE_PER_HOUR:
            raise RateCardError("billing.error.price_too_large", field=name, value=v)
    if c.currency not in CURRENCY_DECIMALS:
        raise RateCardError(
            "billing.error.unknown_currency",
            currency=c.currency,
            known=", ".join(sorted(CURRENCY_DECIMALS)),
        )
    if c.basis not in BASES:
        raise RateCardError("billing.error.bad_basis", value=c.basis)
    if c.rounding not in ROUNDINGS:
        raise RateCardError("billing.error.bad_rounding", value=c.rounding)
    if not _is_int(c.increment_minutes) or not 0 < c.increment_minutes <= MAX_INCREMENT_MINUTES:
        raise RateCardError(
            "billing.error.bad_increment", value=c.increment_minutes, max=MAX_INCREMENT_MINUTES
        )
    for name in ("minimum_minutes", "grace_minutes"):
        v = getattr(c, name)
        if not _is_int(v) or v < 0:
            raise RateCardError("billing.error.negative_minutes", field=name, value=v)
    if not isinstance(c.effective_from, dt.date):
        raise RateCardError("billing.error.bad_date", field="effective_from")
    if c.effective_to is not None:
        if not isinstance(c.effective_to, dt.date):
            raise RateCardError("billing.error.bad_date", field="effective_to")
        if c.effective_to < c.effective_from:
            raise RateCardError(
                "billing.error.dates_reversed",
                start=c.effective_from.isoformat(),
                end=c.effective_to.isoformat(),
            )


def _overlaps(a: RateCard, b: RateCard) -> bool:
    a_end = a.effective_to or dt.date.max
    b_end = b.effective_to or dt.date.max
    return a.effective_from <= b_end and b.effective_from <= a_end


def find_overlap(cards: Iterable[RateCard]) -> tuple[RateCard, RateCard] | None:
    """The first pair of cards of the same scope whose effective dates overlap, or None."""
    by_scope: dict[tuple[str, str], list[RateCard]] = defaultdict(list)
    for c in cards:
        by_scope[c.scope].append(c)
    for group in by_scope.values():
        group.sort(key=lambda c: c.effective_from)
        for prev, nxt in zip(group, group[1:]):
            if _overlaps(prev, nxt):
                return prev, nxt
    return None


def check_no_overlap(cards: Iterable[RateCard]) -> None:
    """Raise :class:`RateCardError` if two cards of the same scope overlap in time."""
    pair = find_overlap(cards)
    if pair is not None:
        a, b = pair
        kind, name = a.scope
        raise RateCardError(
            "billing.error.overlap",
            scope=name,
            a_from=a.effective_from.isoformat(),
            a_to=a.effective_to.isoformat() if a.effective_to else "…",
            b_from=b.effective_from.isoformat(),
            b_to=b.effective_to.isoformat() if b.effective_to else "…",
        )


def select_card(
    cards: Iterable[RateCard], machine: str, machine_type: str | None, local_date: dt.date
) -> RateCard | None:
    """The card for ``machine`` on ``local_date`` (the session's start date, site local time):
    the machine's own card if one applies that day, else its type's card, else None."""
    by_type: RateCard | None = None
    for c in cards:
        if not c.applies_on(local_date):
            continue
        if c.machine is not None and c.machine == machine:
            return c
        if c.machine_type is not None and machine_type is not None and c.machine_type == machine_type:
            by_type = c
    return by_type
