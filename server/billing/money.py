"""Money: integer minor units with a currency. No floats anywhere.

``CURRENCY_DECIMALS`` says how many decimals each currency's minor unit has (ISO 4217):
CFA francs (XOF, XAF) have none, so 2,500 XOF is stored as ``2500``; euros have two, so
12.50 EUR is stored as ``1250``."""

from __future__ import annotations

CURRENCY_DECIMALS: dict[str, int] = {
    "XOF": 0,  # franc CFA BCEAO (Senegal, Mali, Burkina Faso, Benin, Côte d'Ivoire...)
    "XAF": 0,  # franc CFA BEAC (Cameroon, Gabon, Chad...)
    "GNF": 0,  # Guinean franc
    "EUR": 2,
    "USD": 2,
    "GHS": 2,
    "NGN": 2,
    "MAD": 2,
    "GMD": 2,
    "MRU": 2,
}
DEFAULT_CURRENCY = "XOF"


def is_known_currency(code: str) -> bool:
    return code in CURRENCY_DECIMALS


def div_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero, integers only."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    return sign * ((2 * abs(numerator) + denominator) // (2 * denominator))


def format_amount(minor: int, currency: str, lang: str = "fr") -> str:
    """``2500, XOF`` -> ``2 500 XOF`` (fr) / ``2,500 XOF`` (en); ``1250, EUR`` -> ``12,50 EUR``.
    Display only; stored amounts stay integers."""
    decimals = CURRENCY_DECIMALS.get(currency, 0)
    sign = "-" if minor < 0 else ""
    units, frac = divmod(abs(minor), 10**decimals) if decimals else (abs(minor), 0)
    thousands = " " if lang == "fr" else ","
    point = "," if lang == "fr" else "."
    body = f"{units:,}".replace(",", thousands)
    if decimals:
        body += f"{point}{frac:0{decimals}d}"
    return f"{sign}{body} {currency}"
