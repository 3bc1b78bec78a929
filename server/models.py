"""The tables of record. Every model shares one :class:`Base`; other parts of the server
(billing, maintenance, security) define their tables in their own ``server/<part>/models.py``
importing this Base, and :func:`load_all_models` imports them so Alembic sees one metadata.

Times of events are UTC epoch milliseconds (``*_ms``, BigInteger) for exactness; bookkeeping
timestamps are timezone-aware UTC datetimes (:class:`UTCDateTime`).
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# An auto-incrementing 64-bit key (SQLite only auto-increments INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator):
    """Stores UTC, returns timezone-aware UTC datetimes on every database (SQLite has no tz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC datetimes")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    """Now on the server's clock: the system clock, or the demo's accelerated clock when
    CRP_CLOCK says so (so due dates, escalations and issue dates follow simulated time)."""
    from .background import server_clock

    return dt.datetime.fromtimestamp(server_clock().now(), dt.timezone.utc)


class Base(DeclarativeBase):
    pass


# --------------------------------------------------------------------------- registry


class Site(Base):
    __tablename__ = "sites"

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    tz: Mapped[str] = mapped_column(String(64), default="Africa/Dakar")
    currency: Mapped[str] = mapped_column(String(3), default="XOF")
    locale: Mapped[str] = mapped_column(String(8), default="fr")


class MachineType(Base):
    __tablename__ = "machine_types"

    code: Mapped[str] = mapped_column(String(48), primary_key=True)
    name_fr: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    idle_timeout_s: Mapped[int] = mapped_column(Integer, default=600)


class Machine(Base):
    __tablename__ = "machines"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"), index=True)
    type: Mapped[str] = mapped_column(ForeignKey("machine_types.code"))
    name: Mapped[str] = mapped_column(String(120))
    node_id: Mapped[str | None] = mapped_column(String(48), unique=True)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    lock_reason: Mapped[str | None] = mapped_column(String(200))


class Artisan(Base):
    __tablename__ = "artisans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(32))
    trade: Mapped[str | None] = mapped_column(String(64))
    cooperative: Mapped[str | None] = mapped_column(String(120))
    member: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | suspended
    credit_blocked: Mapped[bool] = mapped_column(Boolean, default=False)


class Badge(Base):
    __tablename__ = "badges"

    uid: Mapped[str] = mapped_column(String(20), primary_key=True)
    artisan: Mapped[int] = mapped_column(ForeignKey("artisans.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Qualification(Base):
    __tablename__ = "qualifications"
    __table_args__ = (UniqueConstraint("artisan", "machine_type", name="uq_qualification"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    artisan: Mapped[int] = mapped_column(ForeignKey("artisans.id"))
    machine_type: Mapped[str] = mapped_column(ForeignKey("machine_types.code"))
    expires_on: Mapped[dt.date | None] = mapped_column(Date)


class Gateway(Base):
    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"), index=True)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    last_seen: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


# --------------------------------------------------------------------------- events


class Event(Base):
    """Every event exactly once: ``(source, boot, seq)`` is unique."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source", "boot", "seq", name="uq_event_key"),
        Index("ix_events_machine_t", "machine", "t_ms"),
        Index("ix_events_site_t", "site", "t_ms"),
        Index("ix_events_kind_t", "kind", "t_ms"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(48))
    boot: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(8))
    machine: Mapped[str | None] = mapped_column(String(48))
    t_ms: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    skew_ms: Mapped[int | None] = mapped_column(BigInteger)
    gateway: Mapped[str] = mapped_column(String(48))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Session(Base):
    """A session of record, re-derived from events (crp_common.sessions) on every ingest."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_machine_start", "machine", "start_ms"),
        Index("ix_sessions_site_start", "site", "start_ms"),
        Index("ix_sessions_artisan_start", "artisan", "start_ms"),
    )

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    site: Mapped[str] = mapped_column(String(8))
    machine: Mapped[str] = mapped_column(String(48))
    artisan: Mapped[int | None] = mapped_column(Integer)
    badge_uid: Mapped[str | None] = mapped_column(String(20))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    run_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    last_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    # Energy used in the session (Wh) from the machine's energy readings (metering plugs);
    # None when the machine reports no energy. Migration 0005.
    energy_wh: Mapped[float | None] = mapped_column(Float, nullable=True)

    @property
    def badge_ms(self) -> int:
        return (self.end_ms if self.end_ms is not None else self.last_ms) - self.start_ms


class MachineStateChange(Base):
    __tablename__ = "machine_state_changes"
    __table_args__ = (Index("ix_state_machine_t", "machine", "t_ms"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    machine: Mapped[str] = mapped_column(String(48))
    t_ms: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str | None] = mapped_column(String(64))
    event_key: Mapped[str] = mapped_column(String(80), unique=True)  # "source:boot:seq"


class DeadLetter(Base):
    """Input we refused, kept with its reason so nothing is lost."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(32), default="ingest")
    gateway: Mapped[str | None] = mapped_column(String(48))
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)


# --------------------------------------------------------------------------- other parts


def load_all_models() -> list[str]:
    """Import every ``server.<part>.models`` module that exists so that ``Base.metadata``
    holds all tables (used by Alembic's env.py). Returns the modules imported."""
    import server

    loaded = []
    for info in pkgutil.iter_modules(server.__path__):
        if not info.ispkg:
            continue
        name = f"server.{info.name}.models"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        loaded.append(name)
    return loaded
