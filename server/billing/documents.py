"""What an invoice or credit note shows, as plain data: built by the service from the database,
rendered by :mod:`server.billing.export` (CSV, PDF) and by the API and CLI (JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, Iterator, NamedTuple, Sequence, overload


@dataclass(frozen=True)
class SiteInfo:
    code: str
    name: str = ""
    address: str = ""
    phone: str = ""
    email: str = ""
    tax_id: str = ""  # NINEA, IFU, NIU... as printed on invoices
    tz: str = "Africa/Dakar"
    currency: str = "XOF"


class DocLine(NamedTuple):
    """One line of a document. A named tuple: a billing run builds one per session, and a
    tuple is several times cheaper to build than a frozen dataclass (same fields, same
    values, read-only)."""

    session_id: str
    machine: str
    start_local: str
    end_local: str
    basis: str
    measured_seconds: int
    billed_minutes: int
    rate_per_hour: int
    amount: int
    artisan_id: int | None = None
    artisan_name: str = ""
    line_id: int | None = None
    credited_line_id: int | None = None  # credit-note lines: the invoice line they cancel
    energy_wh: int | None = None  # whole Wh metered during the session; None: no meter
    price_per_kwh: int = 0  # minor units; 0: energy not priced
    energy_amount: int = 0  # the energy part of ``amount`` (negative on a credit note)


class LazyLines(Sequence[DocLine]):
    """A document's lines, built on first use (iteration, indexing, comparison) by
    ``build()``; the length is known up front. A billing run returns its invoices with these:
    the lines are in the database already, and building one :class:`DocLine` per session
    only pays when a caller reads them (JSON, CSV, PDF), not for a run that only counts.
    Read-only, compares equal to a list of the same lines."""

    __slots__ = ("_build", "_len", "_lines")

    def __init__(self, length: int, build: Callable[[], list[DocLine]]):
        self._len = length
        self._build: Callable[[], list[DocLine]] | None = build
        self._lines: list[DocLine] | None = None

    def _all(self) -> list[DocLine]:
        if self._lines is None:
            assert self._build is not None
            lines = self._build()
            if len(lines) != self._len:
                raise AssertionError(f"{len(lines)} lines built, {self._len} announced")
            self._lines, self._build = lines, None
        return self._lines

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> DocLine: ...
    @overload
    def __getitem__(self, i: slice) -> list[DocLine]: ...
    def __getitem__(self, i):  # noqa: ANN001, ANN204
        return self._all()[i]

    def __iter__(self) -> Iterator[DocLine]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyLines):
            return self._all() == other._all()
        if isinstance(other, list):
            return self._all() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like a list

    def __repr__(self) -> str:
        return repr(self._all())


@dataclass(frozen=True)
class InvoiceDoc:
    kind: str  # "invoice" | "credit_note"
    number: str
    site: SiteInfo
    artisan: int | None  # the artisan billed, or None when billed to a cooperative
    cooperative: str | None
    bill_to_name: str
    period: str
    issued_at_local: str
    currency: str
    subtotal: int
    tax_bp: int
    tax: int
    total: int
    lang: str = "fr"
    status: str = "issued"
    credits: str | None = None  # credit note: the invoice number it corrects
    reason: str = ""
    lines: Sequence[DocLine] = field(default_factory=list)  # a list or LazyLines

    @property
    def bill_to_kind(self) -> str:
        return "cooperative" if self.cooperative is not None else "artisan"

    @property
    def bill_to_id(self) -> str:
        return self.cooperative if self.cooperative is not None else str(self.artisan)

    def as_dict(self) -> dict[str, object]:
        # the keys and values of dataclasses.asdict(self), lines as dicts too
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["site"] = self.site.code
        d["lines"] = [ln._asdict() for ln in self.lines]
        d["bill_to_kind"] = self.bill_to_kind
        d["artisan_name"] = self.bill_to_name  # the artisan's or the cooperative's name
        return d
