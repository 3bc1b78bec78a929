"""Maintenance: plans and counters, alerts (one open per machine and cause), technicians,
notification targets and deliveries (one per alert, target and event), work orders.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "maintenance_plans",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("machine", sa.String(48), sa.ForeignKey("machines.id"), nullable=True),
        sa.Column("machine_type", sa.String(48), sa.ForeignKey("machine_types.code"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("interval_n", sa.Float(), nullable=True),
        sa.Column("due_soon_share", sa.Float(), nullable=False),
        sa.Column("task", sa.String(300), nullable=False),
        sa.Column("metric", sa.String(8), nullable=True),
        sa.Column("above", sa.Float(), nullable=True),
        sa.Column("for_s", sa.Integer(), nullable=True),
        sa.Column("fault_code", sa.String(16), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("(machine IS NULL) <> (machine_type IS NULL)", name="ck_plan_scope"),
        sa.CheckConstraint(
            "kind IN ('run_hours', 'calendar_days', 'condition', 'fault')", name="ck_plan_kind"
        ),
        sa.CheckConstraint("interval_n IS NULL OR interval_n > 0", name="ck_plan_interval"),
        sa.CheckConstraint("due_soon_share >= 0 AND due_soon_share < 1", name="ck_plan_share"),
    )
    op.create_index("ix_plans_machine", "maintenance_plans", ["machine"])
    op.create_index("ix_plans_type", "maintenance_plans", ["machine_type"])
    op.create_table(
        "plan_counters",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("plan_id", sa.Integer(), sa.ForeignKey("maintenance_plans.id", ondelete="CASCADE"), nullable=False),
        sa.Column("machine", sa.String(48), sa.ForeignKey("machines.id"), nullable=False),
        sa.Column("offset_ms", sa.BigInteger(), nullable=False),
        sa.Column("since_ms", sa.BigInteger(), nullable=False),
        sa.Column("run_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_service_on", sa.Date(), nullable=True),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("plan_id", "machine", name="uq_plan_counter"),
    )
    op.create_table(
        "maintenance_alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("machine", sa.String(48), sa.ForeignKey("machines.id"), nullable=False),
        sa.Column("plan_id", sa.Integer(), sa.ForeignKey("maintenance_plans.id", ondelete="SET NULL"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(80), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("cleared_at", TS, nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(120), nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("resolved_by", sa.String(120), nullable=True),
        sa.Column("escalated_at", TS, nullable=True),
        sa.Column("dedup_key", sa.String(140), nullable=True, unique=True),
        sa.Column("source_event", sa.String(160), nullable=True, unique=True),
        sa.CheckConstraint(
            "kind IN ('due_soon', 'due', 'overdue', 'condition', 'fault', 'offline')", name="ck_alert_kind"
        ),
        sa.CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name="ck_alert_state"),
    )
    op.create_index("ix_alerts_machine_raised", "maintenance_alerts", ["machine", "raised_at"])
    op.create_index("ix_alerts_state", "maintenance_alerts", ["state"])
    op.create_table(
        "technicians",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("email", sa.String(200), nullable=True),
        sa.Column("lang", sa.String(2), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint("lang IN ('fr', 'en')", name="ck_technician_lang"),
    )
    op.create_index("ix_technicians_site", "technicians", ["site"])
    op.create_table(
        "notification_targets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("technician_id", sa.Integer(), sa.ForeignKey("technicians.id"), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("escalation_only", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.CheckConstraint("channel IN ('email', 'sms', 'webhook', 'mqtt')", name="ck_target_channel"),
    )
    op.create_index("ix_notification_targets_site", "notification_targets", ["site"])
    op.create_table(
        "notification_deliveries",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("maintenance_alerts.id"), nullable=False),
        sa.Column("target_id", sa.Integer(), sa.ForeignKey("notification_targets.id"), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("alert_id", "target_id", "event", name="uq_delivery"),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name="ck_delivery_status"),
    )
    op.create_index("ix_deliveries_status", "notification_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "work_orders",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=False),
        sa.Column("machine", sa.String(48), sa.ForeignKey("machines.id"), nullable=False),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("maintenance_alerts.id"), nullable=True),
        sa.Column("plan_id", sa.Integer(), sa.ForeignKey("maintenance_plans.id", ondelete="SET NULL"), nullable=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("work_done", sa.Text(), nullable=False),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("minutes_spent", sa.Integer(), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("opened_by", sa.String(120), nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("closed_by", sa.String(120), nullable=True),
        sa.CheckConstraint("state IN ('open', 'closed')", name="ck_work_order_state"),
        sa.CheckConstraint("minutes_spent >= 0", name="ck_work_order_minutes"),
    )
    op.create_index("ix_work_orders_machine", "work_orders", ["machine", "opened_at"])


def downgrade() -> None:
    op.drop_index("ix_work_orders_machine", table_name="work_orders")
    op.drop_table("work_orders")
    op.drop_index("ix_deliveries_status", table_name="notification_deliveries")
    op.drop_table("notification_deliveries")
    op.drop_index("ix_notification_targets_site", table_name="notification_targets")
    op.drop_table("notification_targets")
    op.drop_index("ix_technicians_site", table_name="technicians")
    op.drop_table("technicians")
    op.drop_index("ix_alerts_state", table_name="maintenance_alerts")
    op.drop_index("ix_alerts_machine_raised", table_name="maintenance_alerts")
    op.drop_table("maintenance_alerts")
    op.drop_table("plan_counters")
    op.drop_index("ix_plans_type", table_name="maintenance_plans")
    op.drop_index("ix_plans_machine", table_name="maintenance_plans")
    op.drop_table("maintenance_plans")
