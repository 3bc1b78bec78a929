"""Initial schema: registry, events, sessions, machine states, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("code", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
    )
    op.create_table(
        "machine_types",
        sa.Column("code", sa.String(48), primary_key=True),
        sa.Column("name_fr", sa.String(120), nullable=False),
        sa.Column("name_en", sa.String(120), nullable=False),
        sa.Column("idle_timeout_s", sa.Integer(), nullable=False),
    )
    op.create_table(
        "machines",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("type", sa.String(48), sa.ForeignKey("machine_types.code"), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("node_id", sa.String(48), nullable=True, unique=True),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("lock_reason", sa.String(200), nullable=True),
    )
    op.create_index("ix_machines_site", "machines", ["site"])
    op.create_table(
        "artisans",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("trade", sa.String(64), nullable=True),
        sa.Column("cooperative", sa.String(120), nullable=True),
        sa.Column("member", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("credit_blocked", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_artisans_site", "artisans", ["site"])
    op.create_table(
        "badges",
        sa.Column("uid", sa.String(20), primary_key=True),
        sa.Column("artisan", sa.Integer(), sa.ForeignKey("artisans.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
    )
    op.create_index("ix_badges_artisan", "badges", ["artisan"])
    op.create_table(
        "qualifications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("artisan", sa.Integer(), sa.ForeignKey("artisans.id"), nullable=False),
        sa.Column("machine_type", sa.String(48), sa.ForeignKey("machine_types.code"), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.UniqueConstraint("artisan", "machine_type", name="uq_qualification"),
    )
    op.create_table(
        "gateways",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("api_key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("last_seen", TS, nullable=True),
    )
    op.create_index("ix_gateways_site", "gateways", ["site"])
    op.create_table(
        "events",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(48), nullable=False),
        sa.Column("boot", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("site", sa.String(8), nullable=False),
        sa.Column("machine", sa.String(48), nullable=True),
        sa.Column("t_ms", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("skew_ms", sa.BigInteger(), nullable=True),
        sa.Column("gateway", sa.String(48), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.UniqueConstraint("source", "boot", "seq", name="uq_event_key"),
    )
    op.create_index("ix_events_machine_t", "events", ["machine", "t_ms"])
    op.create_index("ix_events_site_t", "events", ["site", "t_ms"])
    op.create_index("ix_events_kind_t", "events", ["kind", "t_ms"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(120), primary_key=True),
        sa.Column("site", sa.String(8), nullable=False),
        sa.Column("machine", sa.String(48), nullable=False),
        sa.Column("artisan", sa.Integer(), nullable=True),
        sa.Column("badge_uid", sa.String(20), nullable=True),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("run_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_sessions_machine_start", "sessions", ["machine", "start_ms"])
    op.create_index("ix_sessions_site_start", "sessions", ["site", "start_ms"])
    op.create_index("ix_sessions_artisan_start", "sessions", ["artisan", "start_ms"])
    op.create_table(
        "machine_state_changes",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("machine", sa.String(48), nullable=False),
        sa.Column("t_ms", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(64), nullable=True),
        sa.Column("event_key", sa.String(80), nullable=False, unique=True),
    )
    op.create_index("ix_state_machine_t", "machine_state_changes", ["machine", "t_ms"])
    op.create_table(
        "dead_letters",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("gateway", sa.String(48), nullable=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])


def downgrade() -> None:
    for table in (
        "dead_letters",
        "machine_state_changes",
        "sessions",
        "events",
        "gateways",
        "qualifications",
        "badges",
        "artisans",
        "machines",
        "machine_types",
        "sites",
    ):
        op.drop_table(table)
