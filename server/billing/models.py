"""Billing tables (shared :class:`server.models.Base`; migration ``0002_billing``).

Invariants the database itself holds:

- ``invoice_lines.session_id`` is UNIQUE: a session is on at most one invoice, ever. Credit
  notes never reuse a session; their lines point at the invoice line they cancel
  (``credit_note_lines.credited_line_id``, UNIQUE: a line is credited at most once).
- ``(site, year, seq)`` is UNIQUE for invoices and for credit notes, and the numbers come from
  ``invoice_counters`` inside the issuing transaction, so they have no gaps.
- Issued documents are immutable: any UPDATE or DELETE on ``invoices``, ``invoice_lines``,
  ``credit_notes``, ``credit_note_lines`` is refused by an ORM guard below and by database
  triggers (PostgreSQL and SQLite) created by the migration. An invoice's status (issued,
  partially credited, credited) is derived from its credit notes, never stored.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId, UTCDateTime, utcnow

from .errors import Conflict

IMMUTABLE_TABLES = ("invoices", "invoice_lines", "credit_notes", "credit_note_lines")
PAYMENT_METHODS = ("cash", "orange_money", "wave", "mtn_momo", "moov_money")


class RateCardRow(Base):
    __tablename__ = "rate_cards"
    __table_args__ = (
        CheckConstraint(
            "(machine IS NULL) <> (machine_type IS NULL)", name="ck_rate_card_scope"
        ),
        CheckConstraint(
            "price_per_hour_member >= 0 AND price_per_hour_non_member >= 0",
            name="ck_rate_card_price",
        ),
        CheckConstraint("increment_minutes > 0", name="ck_rate_card_increment"),
        Index("ix_rate_cards_site", "site"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"))
    machine: Mapped[str | None] = mapped_column(String(48))
    machine_type: Mapped[str | None] = mapped_column(String(48))
    currency: Mapped[str] = mapped_column(String(3))
    price_per_hour_member: Mapped[int] = mapped_column(BigInteger)
    price_per_hour_non_member: Mapped[int] = mapped_column(BigInteger)
    basis: Mapped[str] = mapped_column(String(8))
    increment_minutes: Mapped[int] = mapped_column(Integer)
    rounding: Mapped[str] = mapped_column(String(8))
    minimum_minutes: Mapped[int] = mapped_column(Integer)
    grace_minutes: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[dt.date] = mapped_column(Date)
    effective_to: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Metered energy, minor units per kWh; 0: not priced (migration 0007).
    price_per_kwh: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class InvoiceCounter(Base):
    """Last number used per site, year and kind (``invoice`` or ``credit_note``)."""

    __tablename__ = "invoice_counters"

    site: Mapped[str] = mapped_column(String(8), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("site", "year", "seq", name="uq_invoice_seq"),
        CheckConstraint(
            "(artisan_id IS NULL) <> (cooperative IS NULL)", name="ck_invoice_bill_to"
        ),
        Index("ix_invoices_period", "site", "period"),
        Index("ix_invoices_artisan", "artisan_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"))
    year: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    artisan_id: Mapped[int | None] = mapped_column(ForeignKey("artisans.id"))
    cooperative: Mapped[str | None] = mapped_column(String(120))
    bill_to_name: Mapped[str] = mapped_column(String(120))
    period: Mapped[str] = mapped_column(String(7))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(BigInteger)
    tax_bp: Mapped[int] = mapped_column(Integer)
    tax: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lang: Mapped[str] = mapped_column(String(8))


class InvoiceLine(Base):
    """One session charge, with everything needed to explain it."""

    __tablename__ = "invoice_lines"
    __table_args__ = (Index("ix_invoice_lines_invoice", "invoice_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    kind: Mapped[str] = mapped_column(String(16), default="charge")
    # No foreign key: sessions are re-derived from events; the line keeps its own copy.
    session_id: Mapped[str] = mapped_column(String(120), unique=True)
    artisan_id: Mapped[int] = mapped_column(Integer)
    machine: Mapped[str] = mapped_column(String(48))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    start_local: Mapped[str] = mapped_column(String(32))
    end_local: Mapped[str] = mapped_column(String(32))
    basis: Mapped[str] = mapped_column(String(8))
    measured_seconds: Mapped[int] = mapped_column(BigInteger)
    billed_minutes: Mapped[int] = mapped_column(Integer)
    rate_per_hour: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    member: Mapped[bool] = mapped_column(Boolean)
    rate_card_id: Mapped[int | None] = mapped_column(ForeignKey("rate_cards.id"))
    # Energy (migration 0007): whole Wh metered (None: no meter), the card's price per kWh and
    # the energy part of ``amount`` (``amount`` is the line total, time + energy).
    energy_wh: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    price_per_kwh: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    energy_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class CreditNote(Base):
    __tablename__ = "credit_notes"
    __table_args__ = (
        UniqueConstraint("site", "year", "seq", name="uq_credit_note_seq"),
        Index("ix_credit_notes_invoice", "invoice_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"))
    year: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(BigInteger)  # negative
    tax_bp: Mapped[int] = mapped_column(Integer)
    tax: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lang: Mapped[str] = mapped_column(String(8))


class CreditNoteLine(Base):
    __tablename__ = "credit_note_lines"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    credit_note_id: Mapped[int] = mapped_column(ForeignKey("credit_notes.id"), index=True)
    credited_line_id: Mapped[int] = mapped_column(ForeignKey("invoice_lines.id"), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # negative of the credited line


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_payment_amount"),
        CheckConstraint(
            "(artisan_id IS NULL) <> (cooperative IS NULL)", name="ck_payment_payer"
        ),
        Index("ix_payments_artisan", "artisan_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"))
    artisan_id: Mapped[int | None] = mapped_column(ForeignKey("artisans.id"))
    cooperative: Mapped[str | None] = mapped_column(String(120))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(80), default="")
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CreditAccount(Base):
    """Optional credit policy of an artisan (see :mod:`server.billing.credit`)."""

    __tablename__ = "credit_accounts"

    artisan_id: Mapped[int] = mapped_column(ForeignKey("artisans.id"), primary_key=True)
    prepaid: Mapped[bool] = mapped_column(Boolean, default=False)
    credit_limit: Mapped[int | None] = mapped_column(BigInteger)


class SiteBilling(Base):
    """What a site prints on its invoices, and its default tax rate."""

    __tablename__ = "site_billing"

    site: Mapped[str] = mapped_column(ForeignKey("sites.code"), primary_key=True)
    address: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(120), default="")
    tax_id: Mapped[str] = mapped_column(String(40), default="")
    tax_bp: Mapped[int] = mapped_column(Integer, default=0)


# --------------------------------------------------------------------------- immutability


def _refuse(_mapper, _connection, target) -> None:  # noqa: ANN001
    raise Conflict("billing.error.immutable", table=target.__tablename__)


for _model in (Invoice, InvoiceLine, CreditNote, CreditNoteLine):
    event.listen(_model, "before_update", _refuse)
    event.listen(_model, "before_delete", _refuse)
