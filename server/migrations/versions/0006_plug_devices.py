"""Metering plugs as broker devices: mqtt_devices.kind 'plug' with plug_type and plug_topic.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mqtt_devices") as batch:
        batch.add_column(sa.Column("plug_type", sa.String(8), nullable=True))
        batch.add_column(sa.Column("plug_topic", sa.String(120), nullable=True))
        batch.drop_constraint("ck_device_kind", type_="check")
        batch.drop_constraint("ck_device_machine", type_="check")
        batch.create_check_constraint("ck_device_kind", "kind IN ('node', 'gateway', 'plug')")
        batch.create_check_constraint("ck_device_machine", "(kind IN ('node', 'plug')) = (machine IS NOT NULL)")
        batch.create_check_constraint("ck_device_plug",
                                      "(kind = 'plug') = (plug_type IS NOT NULL AND plug_topic IS NOT NULL)")


def downgrade() -> None:
    op.execute("DELETE FROM mqtt_devices WHERE kind = 'plug'")
    with op.batch_alter_table("mqtt_devices") as batch:
        batch.drop_constraint("ck_device_plug", type_="check")
        batch.drop_constraint("ck_device_machine", type_="check")
        batch.drop_constraint("ck_device_kind", type_="check")
        batch.create_check_constraint("ck_device_kind", "kind IN ('node', 'gateway')")
        batch.create_check_constraint("ck_device_machine", "(kind = 'node') = (machine IS NOT NULL)")
        batch.drop_column("plug_topic")
        batch.drop_column("plug_type")
