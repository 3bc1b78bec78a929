"""Credit status: whether an artisan's badge must be refused with ``credit_limit``.

``owed`` is what the artisan owes right now, in minor units: invoiced - credited - paid, plus
the charges of closed sessions not invoiced yet (so prepaid credit is used up as the artisan
works, not only at the end of the month). A negative ``owed`` is money paid in advance.

- Post-paid account with a limit: blocked once the artisan owes something and the amount owed
  reaches the limit (``owed > 0 and owed >= limit``). No limit: never blocked.
- Prepaid account: blocked once the credit is used up, i.e. ``owed >= limit`` where the limit is
  an allowed overdraft (0 by default: blocked as soon as nothing is left)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CreditPolicy:
    prepaid: bool = False
    limit: int | None = None  # minor units; None = no limit (post-paid only)


def credit_blocked(owed: int, policy: CreditPolicy) -> bool:
    if policy.prepaid:
        return owed >= (policy.limit or 0)
    if policy.limit is None:
        return False
    return owed > 0 and owed >= policy.limit


def available_credit(owed: int, policy: CreditPolicy) -> int | None:
    """What the artisan can still spend before being blocked (None = unlimited)."""
    if not policy.prepaid and policy.limit is None:
        return None
    return max(0, (policy.limit or 0) - owed)
