"""What an invoice or credit note shows, as plain data: built by the service from the database,
rendered by :mod:`server.billing.export` (CSV, PDF) and by the API and CLI (JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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


@dataclass(frozen=True)
class DocLine:
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
    lines: list[DocLine] = field(default_factory=list)

    @property
    def bill_to_kind(self) -> str:
        return "cooperative" if self.cooperative is not None else "artisan"

    @property
    def bill_to_id(self) -> str:
        return self.cooperative if self.cooperative is not None else str(self.artisan)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["site"] = self.site.code
        d["bill_to_kind"] = self.bill_to_kind
        d["artisan_name"] = self.bill_to_name  # the artisan's or the cooperative's name
        return d
