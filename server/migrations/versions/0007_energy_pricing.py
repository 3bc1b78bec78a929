"""Rate cards may price metered energy: rate_cards.price_per_kwh; invoice lines keep the
energy they billed (energy_wh, price_per_kwh, energy_amount; amount stays the line total).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rate_cards") as batch:
        batch.add_column(sa.Column("price_per_kwh", sa.BigInteger(), nullable=False, server_default="0"))
    # invoice_lines is append-only (triggers refuse UPDATE and DELETE): plain ADD COLUMN keeps
    # the table and its triggers, on SQLite and PostgreSQL alike.
    op.add_column("invoice_lines", sa.Column("energy_wh", sa.BigInteger(), nullable=True))
    op.add_column("invoice_lines", sa.Column("price_per_kwh", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("invoice_lines", sa.Column("energy_amount", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("rate_cards") as batch:
        batch.drop_column("price_per_kwh")
    for col in ("energy_amount", "price_per_kwh", "energy_wh"):
        op.drop_column("invoice_lines", col)
