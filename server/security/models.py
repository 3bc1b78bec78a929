"""Security tables: users, login attempts, the append-only audit log, MQTT devices and
security alerts. Migration: ``0004_security``.

The audit log is append-only twice over: an ORM guard refuses UPDATE and DELETE of
:class:`AuditEntry` rows, and database triggers refuse them for anyone going around the ORM.
Devices store no secret: only the Mosquitto PBKDF2-SHA512 hash of their password."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base, BigId, UTCDateTime, utcnow

ROLES = ("manager", "technician", "artisan")
DEVICE_KINDS = ("node", "gateway", "plug")
PLUG_TYPES = ("tasmota", "shelly1", "shelly2")
AUDIT_TABLE = "audit_log"
APPEND_ONLY_MESSAGE = "security: the audit log is append-only"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('manager', 'technician', 'artisan')", name="ck_user_role"),
        CheckConstraint("(role = 'artisan') = (artisan_id IS NOT NULL)", name="ck_user_artisan"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    artisan_id: Mapped[int | None] = mapped_column(ForeignKey("artisans.id"), index=True)
    site: Mapped[str | None] = mapped_column(ForeignKey("sites.code"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    # Raised on password reset and deactivation: tokens carrying an older version are refused.
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginAttempt(Base):
    """Every login attempt (the security log the rate limit counts)."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_username_at", "username", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEntry(Base):
    __tablename__ = AUDIT_TABLE
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_entity", "entity", "entity_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))  # username, "gateway:<id>", "admin-token", "system"
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(120))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Device(Base):
    """A machine node, a metering plug or a gateway allowed on the broker. ``username`` is the
    device id. A plug powers a machine and speaks its firmware's topics: ``plug_type`` (tasmota,
    shelly1, shelly2) and ``plug_topic`` (Tasmota %topic%, Shelly Gen1 id, Gen2 prefix)."""

    __tablename__ = "mqtt_devices"
    __table_args__ = (
        CheckConstraint("kind IN ('node', 'gateway', 'plug')", name="ck_device_kind"),
        CheckConstraint("(kind IN ('node', 'plug')) = (machine IS NOT NULL)", name="ck_device_machine"),
        CheckConstraint("(kind = 'plug') = (plug_type IS NOT NULL AND plug_topic IS NOT NULL)", name="ck_device_plug"),
    )

    username: Mapped[str] = mapped_column(String(48), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    site: Mapped[str] = mapped_column(String(8))
    machine: Mapped[str | None] = mapped_column(String(48))
    plug_type: Mapped[str | None] = mapped_column(String(8))  # migration 0006
    plug_topic: Mapped[str | None] = mapped_column(String(120))
    # Mosquitto's "$7$" PBKDF2-SHA512 hash: what the password file holds, never the password.
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SecurityAlert(Base):
    """A security finding (``kind`` "badge_clone": one badge open on two machines at once).
    ``dedup_key`` is UNIQUE so the same finding is raised once."""

    __tablename__ = "security_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    site: Mapped[str | None] = mapped_column(String(8))
    badge_uid: Mapped[str | None] = mapped_column(String(20), index=True)
    state: Mapped[str] = mapped_column(String(16), default="open")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedup_key: Mapped[str] = mapped_column(String(300), unique=True)


class AppendOnlyError(RuntimeError):
    """An attempt to change or remove an audit entry."""


def _refuse(_mapper, _connection, _target) -> None:  # noqa: ANN001
    raise AppendOnlyError(APPEND_ONLY_MESSAGE)


event.listen(AuditEntry, "before_update", _refuse)
event.listen(AuditEntry, "before_delete", _refuse)
