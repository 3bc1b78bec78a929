"""Maintenance tables: plans and their counters, alerts, technicians, notification targets and
deliveries, work orders. Migration: ``0003_maintenance``.

Deduplication is in the schema: an alert that is not resolved holds ``dedup_key`` =
``"<machine>|<cause>"`` (UNIQUE, set to NULL when resolved), so there is one open alert per
(machine, cause); ``source_event`` (UNIQUE) names what raised it, so processing the same event
twice never raises twice; a delivery is UNIQUE per (alert, target, event).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base, BigId, UTCDateTime, utcnow

PLAN_KINDS = ("run_hours", "calendar_days", "condition", "fault")
ALERT_KINDS = ("due_soon", "due", "overdue", "condition", "fault", "offline")
ALERT_STATES = ("open", "acknowledged", "resolved")
CHANNELS = ("email", "sms", "webhook", "mqtt")
DELIVERY_STATUSES = ("pending", "sent", "failed")
METRICS = ("temp", "vib", "current")


def _in(col: str, values: tuple[str, ...]) -> str:
    return f"{col} IN ({', '.join(repr(v) for v in values)})"


class MaintenancePlan(Base):
    __tablename__ = "maintenance_plans"
    __table_args__ = (
        CheckConstraint("(machine IS NULL) <> (machine_type IS NULL)", name="ck_plan_scope"),
        CheckConstraint(_in("kind", PLAN_KINDS), name="ck_plan_kind"),
        CheckConstraint("interval_n IS NULL OR interval_n > 0", name="ck_plan_interval"),
        CheckConstraint("due_soon_share >= 0 AND due_soon_share < 1", name="ck_plan_share"),
        Index("ix_plans_machine", "machine"),
        Index("ix_plans_type", "machine_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    machine: Mapped[str | None] = mapped_column(ForeignKey("machines.id"))
    machine_type: Mapped[str | None] = mapped_column(ForeignKey("machine_types.code"))
    kind: Mapped[str] = mapped_column(String(16))
    # run_hours: hours of motor run time; calendar_days: days. NULL for condition/fault.
    interval: Mapped[float | None] = mapped_column("interval_n", Float)
    due_soon_share: Mapped[float] = mapped_column(Float, default=0.1)
    task: Mapped[str] = mapped_column(String(300))
    metric: Mapped[str | None] = mapped_column(String(8))  # condition
    above: Mapped[float | None] = mapped_column(Float)  # condition
    for_s: Mapped[int | None] = mapped_column(Integer)  # condition
    fault_code: Mapped[str | None] = mapped_column(String(16))  # fault
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlanCounter(Base):
    """Where a run-hour or calendar plan stands on one machine (a machine-type plan has one
    counter per machine of that type)."""

    __tablename__ = "plan_counters"
    __table_args__ = (UniqueConstraint("plan_id", "machine", name="uq_plan_counter"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("maintenance_plans.id", ondelete="CASCADE"))
    machine: Mapped[str] = mapped_column(ForeignKey("machines.id"))
    # Run time since the last service = offset_ms + run time of sessions started at/after since_ms.
    offset_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    since_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    run_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    last_service_on: Mapped[dt.date | None] = mapped_column(Date)  # site-local date
    cycle: Mapped[int] = mapped_column(Integer, default=0)  # +1 at every service
    status: Mapped[str] = mapped_column(String(16), default="ok")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    __tablename__ = "maintenance_alerts"
    __table_args__ = (
        CheckConstraint(_in("kind", ALERT_KINDS), name="ck_alert_kind"),
        CheckConstraint(_in("state", ALERT_STATES), name="ck_alert_state"),
        Index("ix_alerts_machine_raised", "machine", "raised_at"),
        Index("ix_alerts_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"))
    machine: Mapped[str] = mapped_column(ForeignKey("machines.id"))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("maintenance_plans.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(16), default="open")
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # the cause went away
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(120))
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    dedup_key: Mapped[str | None] = mapped_column(String(140), unique=True)
    source_event: Mapped[str | None] = mapped_column(String(160), unique=True)


class Technician(Base):
    __tablename__ = "technicians"
    __table_args__ = (CheckConstraint("lang IN ('fr', 'en')", name="ck_technician_lang"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(200))
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class NotificationTarget(Base):
    """Where alerts of a site go: a technician's address on one channel, or a site-wide one
    (technician NULL). ``escalation_only`` targets (e.g. the manager) get escalations only."""

    __tablename__ = "notification_targets"
    __table_args__ = (CheckConstraint(_in("channel", CHANNELS), name="ck_target_channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"), index=True)
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("technicians.id"))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(300))
    escalation_only: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class NotificationDelivery(Base):
    """One message to one target for one alert event (``raised``, ``due``, ``overdue``,
    ``escalated``): exactly one per (alert, target, event), retried until sent or failed."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "target_id", "event", name="uq_delivery"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="ck_delivery_status"),
        Index("ix_deliveries_status", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("maintenance_alerts.id"))
    target_id: Mapped[int] = mapped_column(ForeignKey("notification_targets.id"))
    event: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # NULL: at once
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkOrder(Base):
    __tablename__ = "work_orders"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'closed')", name="ck_work_order_state"),
        CheckConstraint("minutes_spent >= 0", name="ck_work_order_minutes"),
        Index("ix_work_orders_machine", "machine", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"))
    machine: Mapped[str] = mapped_column(ForeignKey("machines.id"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("maintenance_alerts.id"))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("maintenance_plans.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(8), default="open")
    work_done: Mapped[str] = mapped_column(Text, default="")
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    minutes_spent: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    opened_by: Mapped[str | None] = mapped_column(String(120))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(120))
