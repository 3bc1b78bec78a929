"""Document numbers, sequential per site and year with no gaps.

Invoices: ``<SITE>-<YYYY>-<NNNNNN>`` (``DKR-2026-000123``). Credit notes have their own
sequence, marked ``AV`` (*avoir*): ``DKR-AV-2026-000007``. The sequence number is assigned by
the database inside the issuing transaction (``invoice_counters``); this module only formats and
parses."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import BillingError

SITE_RE = re.compile(r"^[A-Z0-9]{2,8}$")
SEQ_DIGITS = 6
MAX_SEQ = 10**SEQ_DIGITS - 1
INVOICE = "invoice"
CREDIT_NOTE = "credit_note"
KIND_MARK = {INVOICE: "", CREDIT_NOTE: "AV"}
_NUMBER_RE = re.compile(r"^([A-Z0-9]{2,8})-(?:(AV)-)?(\d{4})-(\d{6})$")


@dataclass(frozen=True)
class DocNumber:
    site: str
    year: int
    seq: int
    kind: str = INVOICE

    def __str__(self) -> str:
        return format_number(self.site, self.year, self.seq, self.kind)


def format_number(site: str, year: int, seq: int, kind: str = INVOICE) -> str:
    if not SITE_RE.match(site):
        raise BillingError("billing.error.bad_site", site=site)
    if not 1000 <= year <= 9999:
        raise BillingError("billing.error.bad_year", year=year)
    if not 1 <= seq <= MAX_SEQ:
        raise BillingError("billing.error.sequence_exhausted", site=site, year=year, max=MAX_SEQ)
    if kind not in KIND_MARK:
        raise ValueError(f"unknown document kind {kind!r}")
    mark = KIND_MARK[kind]
    return f"{site}-{mark + '-' if mark else ''}{year:04d}-{seq:0{SEQ_DIGITS}d}"


def format_invoice_number(site: str, year: int, seq: int) -> str:
    return format_number(site, year, seq, INVOICE)


def format_credit_note_number(site: str, year: int, seq: int) -> str:
    return format_number(site, year, seq, CREDIT_NOTE)


def parse_number(number: str) -> DocNumber:
    m = _NUMBER_RE.match(number or "")
    if not m or int(m.group(4)) == 0:
        raise BillingError("billing.error.bad_number", number=number)
    site, mark, year, seq = m.groups()
    return DocNumber(site, int(year), int(seq), CREDIT_NOTE if mark else INVOICE)


def parse_invoice_number(number: str) -> tuple[str, int, int]:
    d = parse_number(number)
    if d.kind != INVOICE:
        raise BillingError("billing.error.bad_number", number=number)
    return d.site, d.year, d.seq


def missing_numbers(seqs: list[int]) -> list[int]:
    """Gaps in a sequence that should run 1..N (for audits and tests)."""
    have = set(seqs)
    top = max(have, default=0)
    return [n for n in range(1, top + 1) if n not in have]
