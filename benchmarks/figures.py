"""Figures and targets as data, and the pure arithmetic behind them (medians, percentiles,
growth exponents, loss and duplicate counts). No I/O here."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence


@dataclass
class Figure:
    """One row of the table: a measured value beside its reference and its target."""

    bench: str
    name: str
    value: float | None
    unit: str
    reference: str = ""  # what it is measured beside, with that figure
    target: str = ""  # the target in words, e.g. ">= 0.7x paho"
    met: bool | None = None  # None: no target (context figure)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of nothing")
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    if not values:
        raise ValueError("percentile of nothing")
    s = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(s)))
    return s[min(rank, len(s)) - 1]


def growth_exponent(points: Iterable[tuple[float, float]]) -> float:
    """Least-squares slope of log(y) against log(x): 1.0 is linear, 2.0 quadratic."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len(pts) < 2:
        raise ValueError("need two positive points for a growth exponent")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    if den == 0:
        raise ValueError("all points have the same size")
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den


def slope_per_minute(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``value`` per minute over ``(seconds, value)`` samples."""
    if len(samples) < 2:
        return 0.0
    mx = sum(s[0] for s in samples) / len(samples)
    my = sum(s[1] for s in samples) / len(samples)
    den = sum((s[0] - mx) ** 2 for s in samples)
    if den == 0:
        return 0.0
    return 60.0 * sum((s[0] - mx) * (s[1] - my) for s in samples) / den


@dataclass(frozen=True)
class Delivery:
    """What arrived of a known set of sent keys."""

    sent: int
    received: int  # every arrival, duplicates included
    unique: int
    lost: int
    duplicated: int  # arrivals beyond the first of a key
    unexpected: int  # keys that were never sent


def count_delivery(sent: Iterable[tuple], received: Iterable[tuple]) -> Delivery:
    """Compare the keys ``(node, boot, seq)`` that were sent with those that arrived."""
    sent_set = set(sent)
    seen: dict[tuple, int] = {}
    total = 0
    for k in received:
        total += 1
        seen[k] = seen.get(k, 0) + 1
    unique = sum(1 for k in seen if k in sent_set)
    return Delivery(sent=len(sent_set), received=total, unique=unique, lost=len(sent_set) - unique,
                    duplicated=sum(n - 1 for n in seen.values()),
                    unexpected=sum(1 for k in seen if k not in sent_set))
