"""Billing: rate cards, invoices and lines, credit notes, payments, counters, credit accounts.

Issued documents are immutable: triggers refuse UPDATE and DELETE on invoices, invoice lines,
credit notes and their lines (PostgreSQL and SQLite), on top of the ORM guard.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
IMMUTABLE_TABLES = ("invoices", "invoice_lines", "credit_notes", "credit_note_lines")
IMMUTABLE_MESSAGE = "billing: issued invoices and credit notes are immutable"


def _money(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "rate_cards",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("machine", sa.String(48), nullable=True),
        sa.Column("machine_type", sa.String(48), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        _money("price_per_hour_member"),
        _money("price_per_hour_non_member"),
        sa.Column("basis", sa.String(8), nullable=False),
        sa.Column("increment_minutes", sa.Integer(), nullable=False),
        sa.Column("rounding", sa.String(8), nullable=False),
        sa.Column("minimum_minutes", sa.Integer(), nullable=False),
        sa.Column("grace_minutes", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("(machine IS NULL) <> (machine_type IS NULL)", name="ck_rate_card_scope"),
        sa.CheckConstraint(
            "price_per_hour_member >= 0 AND price_per_hour_non_member >= 0",
            name="ck_rate_card_price",
        ),
        sa.CheckConstraint("increment_minutes > 0", name="ck_rate_card_increment"),
    )
    op.create_index("ix_rate_cards_site", "rate_cards", ["site"])
    op.create_table(
        "invoice_counters",
        sa.Column("site", sa.String(8), primary_key=True),
        sa.Column("year", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("artisan_id", sa.Integer(), sa.ForeignKey("artisans.id"), nullable=True),
        sa.Column("cooperative", sa.String(120), nullable=True),
        sa.Column("bill_to_name", sa.String(120), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _money("subtotal"),
        sa.Column("tax_bp", sa.Integer(), nullable=False),
        _money("tax"),
        _money("total"),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.UniqueConstraint("site", "year", "seq", name="uq_invoice_seq"),
        sa.CheckConstraint("(artisan_id IS NULL) <> (cooperative IS NULL)", name="ck_invoice_bill_to"),
    )
    op.create_index("ix_invoices_period", "invoices", ["site", "period"])
    op.create_index("ix_invoices_artisan", "invoices", ["artisan_id"])
    op.create_table(
        "invoice_lines",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", sa.Integer(), sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("session_id", sa.String(120), nullable=False, unique=True),
        sa.Column("artisan_id", sa.Integer(), nullable=False),
        sa.Column("machine", sa.String(48), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("start_local", sa.String(32), nullable=False),
        sa.Column("end_local", sa.String(32), nullable=False),
        sa.Column("basis", sa.String(8), nullable=False),
        sa.Column("measured_seconds", sa.BigInteger(), nullable=False),
        sa.Column("billed_minutes", sa.Integer(), nullable=False),
        _money("rate_per_hour"),
        _money("amount"),
        sa.Column("member", sa.Boolean(), nullable=False),
        sa.Column("rate_card_id", sa.Integer(), sa.ForeignKey("rate_cards.id"), nullable=True),
    )
    op.create_index("ix_invoice_lines_invoice", "invoice_lines", ["invoice_id"])
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _money("subtotal"),
        sa.Column("tax_bp", sa.Integer(), nullable=False),
        _money("tax"),
        _money("total"),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.UniqueConstraint("site", "year", "seq", name="uq_credit_note_seq"),
    )
    op.create_index("ix_credit_notes_invoice", "credit_notes", ["invoice_id"])
    op.create_table(
        "credit_note_lines",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("credit_note_id", sa.Integer(), sa.ForeignKey("credit_notes.id"), nullable=False),
        sa.Column(
            "credited_line_id", BIG_ID, sa.ForeignKey("invoice_lines.id"), nullable=False, unique=True
        ),
        _money("amount"),
    )
    op.create_index("ix_credit_note_lines_credit_note_id", "credit_note_lines", ["credit_note_id"])
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("artisan_id", sa.Integer(), sa.ForeignKey("artisans.id"), nullable=True),
        sa.Column("cooperative", sa.String(120), nullable=True),
        _money("amount"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(80), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_payment_amount"),
        sa.CheckConstraint("(artisan_id IS NULL) <> (cooperative IS NULL)", name="ck_payment_payer"),
    )
    op.create_index("ix_payments_artisan", "payments", ["artisan_id"])
    op.create_table(
        "credit_accounts",
        sa.Column("artisan_id", sa.Integer(), sa.ForeignKey("artisans.id"), primary_key=True),
        sa.Column("prepaid", sa.Boolean(), nullable=False),
        sa.Column("credit_limit", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "site_billing",
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), primary_key=True),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(40), nullable=False),
        sa.Column("email", sa.String(120), nullable=False),
        sa.Column("tax_id", sa.String(40), nullable=False),
        sa.Column("tax_bp", sa.Integer(), nullable=False),
    )
    _create_immutability_triggers()


def _create_immutability_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION billing_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{IMMUTABLE_MESSAGE} (%)', TG_TABLE_NAME; END $$"
        )
        for t in IMMUTABLE_TABLES:
            op.execute(
                f"CREATE TRIGGER {t}_immutable BEFORE UPDATE OR DELETE ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION billing_immutable()"
            )
    elif dialect == "sqlite":
        for t in IMMUTABLE_TABLES:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {t}_no_{action.lower()} BEFORE {action} ON {t} "
                    f"BEGIN SELECT RAISE(ABORT, '{IMMUTABLE_MESSAGE} ({t})'); END"
                )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for t in IMMUTABLE_TABLES:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {t}_immutable ON {t}")
        elif dialect == "sqlite":
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {t}_no_{action}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS billing_immutable()")
    for table in (
        "site_billing",
        "credit_accounts",
        "payments",
        "credit_note_lines",
        "credit_notes",
        "invoice_lines",
        "invoices",
        "invoice_counters",
        "rate_cards",
    ):
        op.drop_table(table)
