"""Security: users, login attempts, the append-only audit log (triggers refuse UPDATE and
DELETE on PostgreSQL and SQLite, on top of the ORM guard), MQTT devices, security alerts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
AUDIT_TABLE = "audit_log"
APPEND_ONLY_MESSAGE = "security: the audit log is append-only"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("artisan_id", sa.Integer(), sa.ForeignKey("artisans.id"), nullable=True),
        sa.Column("site", sa.String(8), sa.ForeignKey("sites.code"), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("last_login_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("role IN ('manager', 'technician', 'artisan')", name="ck_user_role"),
        sa.CheckConstraint("(role = 'artisan') = (artisan_id IS NOT NULL)", name="ck_user_artisan"),
    )
    op.create_index("ix_users_artisan_id", "users", ["artisan_id"])
    op.create_table(
        "login_attempts",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_login_attempts_username_at", "login_attempts", ["username", "at"])
    op.create_index("ix_login_attempts_ip_at", "login_attempts", ["ip", "at"])
    op.create_table(
        AUDIT_TABLE,
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(120), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_at", AUDIT_TABLE, ["at"])
    op.create_index("ix_audit_entity", AUDIT_TABLE, ["entity", "entity_id"])
    op.create_table(
        "mqtt_devices",
        sa.Column("username", sa.String(48), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("site", sa.String(8), nullable=False),
        sa.Column("machine", sa.String(48), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("kind IN ('node', 'gateway')", name="ck_device_kind"),
        sa.CheckConstraint("(kind = 'node') = (machine IS NOT NULL)", name="ck_device_machine"),
    )
    op.create_table(
        "security_alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("site", sa.String(8), nullable=True),
        sa.Column("badge_uid", sa.String(20), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("dedup_key", sa.String(300), nullable=False, unique=True),
    )
    op.create_index("ix_security_alerts_badge_uid", "security_alerts", ["badge_uid"])
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {AUDIT_TABLE}_append_only BEFORE UPDATE OR DELETE ON {AUDIT_TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
        )
    elif dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {AUDIT_TABLE}_no_{action.lower()} BEFORE {action} ON {AUDIT_TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {AUDIT_TABLE}_append_only ON {AUDIT_TABLE}")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    elif dialect == "sqlite":
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {AUDIT_TABLE}_no_{action}")
    for table in ("security_alerts", "mqtt_devices", AUDIT_TABLE, "login_attempts", "users"):
        op.drop_table(table)
