"""Tax on an invoice: a rate in basis points (1800 = 18 % VAT) applied once to the invoice
subtotal, rounded half-up to the currency's minor unit (half away from zero for credit notes,
so a credit note mirrors the invoice it cancels exactly). Integers only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .errors import BillingError
from .money import div_half_up

BASIS_POINTS = 10_000  # 100 %
MAX_TAX_BP = BASIS_POINTS


@dataclass(frozen=True)
class Totals:
    subtotal: int
    tax: int
    total: int
    tax_bp: int


def check_tax_bp(tax_bp: int) -> None:
    if not isinstance(tax_bp, int) or isinstance(tax_bp, bool) or not 0 <= tax_bp <= MAX_TAX_BP:
        raise BillingError("billing.error.bad_tax", value=tax_bp, max=MAX_TAX_BP)


def tax_amount(subtotal: int, tax_bp: int) -> int:
    check_tax_bp(tax_bp)
    return div_half_up(subtotal * tax_bp, BASIS_POINTS)


def invoice_totals(line_amounts: Iterable[int], tax_bp: int) -> Totals:
    subtotal = sum(line_amounts)
    tax = tax_amount(subtotal, tax_bp)
    return Totals(subtotal=subtotal, tax=tax, total=subtotal + tax, tax_bp=tax_bp)


def format_rate(tax_bp: int) -> str:
    """1800 -> ``18``, 1850 -> ``18.5``, 1825 -> ``18.25`` (percent, for display)."""
    whole, frac = divmod(tax_bp, 100)
    return str(whole) if frac == 0 else f"{whole}.{frac:02d}".rstrip("0")
