"""Ingestion of the gateways' event batches: validate, store exactly once, derive.

No web framework here: :func:`ingest_batch` takes a database session and a parsed batch. One
bad event never blocks the others: it is kept in ``dead_letters`` with its reason and listed
in ``rejected``. Events are keyed ``(source, boot, seq)`` and inserted with ON CONFLICT DO
NOTHING, so a batch sent twice (the forwarder retries) is stored once.
"""

from __future__ import annotations

import logging

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session as DbSession

from crp_common.contract import UPLINK, MachineState
from crp_common.events import Event as EventIn
from crp_common.events import EVENT_KINDS, GatewayKind, IngestBatch, IngestResult, Rejected

from .models import DeadLetter, Event, Gateway, MachineStateChange, utcnow
from .session_store import affects_sessions, rederive_machine

INSERT_CHUNK = 500
MAX_DETAIL = 500
MAX_PAYLOAD_CHARS = 20_000
MAX_ABS_SKEW_MS = 2**53


# --------------------------------------------------------------------------- body schemas


def _printable(n: int) -> Any:
    """Printable ASCII only: these fields become columns (session id, reason, cause, uid)."""
    return Annotated[str, Field(pattern=rf"^[\x20-\x7e]{{1,{n}}}$")]


SessionId = _printable(120)
Reason = _printable(32)
Cause = _printable(64)
Uid = _printable(20)


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class SessionOpenBody(_Body):
    session: SessionId
    artisan: int | None = None
    uid: Uid | None = None
    req: dict[str, Any] | None = None


class SessionCloseBody(_Body):
    session: SessionId
    reason: Reason | None = None


class DecisionBody(_Body):
    result: Literal["grant", "deny", "end", "expired"]
    reason: str | None = Field(default=None, max_length=64)
    uid: str | None = Field(default=None, max_length=32)
    artisan: int | None = None


class StateBody(_Body):
    state: MachineState
    cause: Cause | None = None


GATEWAY_BODIES: dict[str, type[BaseModel] | None] = {
    GatewayKind.SESSION_OPEN: SessionOpenBody,
    GatewayKind.SESSION_CLOSE: SessionCloseBody,
    GatewayKind.DECISION: DecisionBody,
    GatewayKind.STATE: StateBody,
    GatewayKind.GATEWAY_START: None,
}
NEEDS_MACHINE = set(UPLINK) | {GatewayKind.SESSION_OPEN, GatewayKind.SESSION_CLOSE, GatewayKind.DECISION, GatewayKind.STATE}


@dataclass(frozen=True)
class Ingested:
    """What one batch added, for the hooks: the new event rows (dicts with source, boot, seq,
    kind, site, machine, t_ms, body, skew_ms, gateway) and the machines whose sessions were
    re-derived."""

    gateway: str
    site: str
    events: list[dict[str, Any]]
    machines: frozenset[str]


IngestHook = Callable[[DbSession, Ingested], None]
log = logging.getLogger("crp.server.ingest")
_HOOKS: list[IngestHook] = []


def on_ingested(fn: IngestHook) -> IngestHook:
    """Register ``fn(db, ingested)``, called in the ingest transaction after events are stored
    and sessions derived (maintenance counters, alerts...). Usable as a decorator."""
    if fn not in _HOOKS:
        _HOOKS.append(fn)
    return fn


_COMMITTED_HOOKS: list[IngestHook] = []


def on_committed(fn: IngestHook) -> IngestHook:
    """Register ``fn(db, ingested)``, called after the ingest transaction has committed (work
    that must only see stored data or that commits itself: credit status, telemetry). A failing
    hook is logged and never undoes the ingestion. Usable as a decorator."""
    if fn not in _COMMITTED_HOOKS:
        _COMMITTED_HOOKS.append(fn)
    return fn


def ingest_and_commit(db: DbSession, gateway_id: str, batch: IngestBatch) -> IngestResult:
    """:func:`ingest_batch`, commit, then the after-commit hooks."""
    result = ingest_batch(db, gateway_id, batch)
    db.commit()
    done = db.info.pop("crp_ingested", None)
    if done is not None:
        for hook in list(_COMMITTED_HOOKS):
            try:
                hook(db, done)
            except Exception:  # noqa: BLE001 - the events are stored; the hook can catch up later
                log.exception("after-commit ingest hook %s failed", getattr(hook, "__name__", hook))
                db.rollback()
    return result


class EventRefused(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def first_error(e: ValidationError) -> str:
    err = e.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "event"
    return f"{loc}: {err.get('msg', 'invalid')}"


def validate_event(raw: Any, site: str) -> EventIn:
    """One event of a batch, checked against the contract and the gateway's site. Pure."""
    if not isinstance(raw, dict):
        raise EventRefused("invalid", f"event must be an object, not {type(raw).__name__}")
    try:
        ev = EventIn.model_validate(raw)
    except ValidationError as e:
        raise EventRefused("invalid", first_error(e)) from None
    if ev.skew_ms is not None and abs(ev.skew_ms) > MAX_ABS_SKEW_MS:
        raise EventRefused("invalid", f"skew_ms: out of range ({ev.skew_ms})"[:200])
    if ev.site != site:
        raise EventRefused("wrong_site", f"event site {ev.site} != gateway site {site}")
    if ev.kind in NEEDS_MACHINE and ev.machine is None:
        raise EventRefused("no_machine", f"{ev.kind} events need a machine")
    if ev.kind in UPLINK:
        spec = UPLINK[ev.kind]
        msg = {"v": 1, "node": ev.source, "boot": ev.boot, "seq": ev.seq, **ev.body}
        if ev.kind != "status":
            msg.setdefault("up", 0)
        try:
            spec.model.model_validate(msg)
        except ValidationError as e:
            raise EventRefused("invalid", "body." + first_error(e)) from None
    elif ev.kind in EVENT_KINDS:
        model = GATEWAY_BODIES.get(ev.kind)
        if model is not None:
            try:
                model.model_validate(ev.body)
            except ValidationError as e:
                raise EventRefused("invalid", "body." + first_error(e)) from None
    else:
        raise EventRefused("unknown_kind", ev.kind)
    return ev


# --------------------------------------------------------------------------- storage


def _insert_fn(db: DbSession):
    name = db.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database dialect {name}")
    return insert


def _payload_text(raw: Any) -> str:
    try:
        text = json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(raw)
    return text[:MAX_PAYLOAD_CHARS]


def _storable(text: str) -> str:
    """Text every database accepts (PostgreSQL refuses NUL characters)."""
    return text.replace("\x00", "\\u0000")


def dead_letter(db: DbSession, reason: str, detail: str, payload: Any, gateway: str | None, source: str = "ingest") -> None:
    db.add(
        DeadLetter(
            source=source,
            gateway=gateway,
            reason=reason,
            detail=_storable(detail[:MAX_DETAIL]),
            payload=_storable(payload if isinstance(payload, str) else _payload_text(payload)),
        )
    )


@dataclass
class _Accepted:
    rows: list[dict[str, Any]] = field(default_factory=list)
    keys: set[tuple[str, int, int]] = field(default_factory=set)


def ingest_batch(db: DbSession, gateway_id: str, batch: IngestBatch) -> IngestResult:
    """Store a batch from gateway ``gateway_id``; the caller commits. Never raises for bad
    events: they are dead-lettered and reported in ``rejected``."""
    gw = db.get(Gateway, gateway_id)
    if gw is None:
        raise LookupError(f"unknown gateway {gateway_id}")
    now = utcnow()
    gw.last_seen = now
    rejected: list[Rejected] = []
    acc = _Accepted()
    duplicates = 0
    for i, raw in enumerate(batch.events):
        try:
            ev = validate_event(raw, gw.site)
        except EventRefused as e:
            dead_letter(db, e.reason, e.detail, raw, gateway_id)
            rejected.append(Rejected(index=i, reason=e.reason))
            continue
        if ev.key in acc.keys:
            duplicates += 1
            continue
        acc.keys.add(ev.key)
        acc.rows.append(
            dict(
                source=ev.source,
                boot=ev.boot,
                seq=ev.seq,
                kind=ev.kind,
                site=ev.site,
                machine=ev.machine,
                t_ms=ev.t,
                body=ev.body,
                skew_ms=ev.skew_ms,
                gateway=gateway_id,
                received_at=now,
            )
        )
    inserted = _insert_events(db, acc.rows)
    duplicates += len(acc.rows) - len(inserted)
    new_rows = [r for r in acc.rows if (r["source"], r["boot"], r["seq"]) in inserted]
    _record_states(db, new_rows)
    earliest: dict[str, int] = {}
    for r in new_rows:
        if r["machine"] is not None and affects_sessions(r["kind"]):
            m = r["machine"]
            earliest[m] = min(earliest.get(m, r["t_ms"]), r["t_ms"])
    for machine in sorted(earliest):
        rederive_machine(db, machine, earliest[machine])
    db.flush()
    if new_rows:
        done = Ingested(gateway_id, gw.site, new_rows, frozenset(earliest))
        db.info["crp_ingested"] = done
        for hook in list(_HOOKS):
            hook(db, done)
    return IngestResult(accepted=len(inserted), duplicates=duplicates, rejected=rejected)


def _insert_events(db: DbSession, rows: list[dict[str, Any]]) -> set[tuple[str, int, int]]:
    if not rows:
        return set()
    insert = _insert_fn(db)
    table = Event.__table__
    inserted: set[tuple[str, int, int]] = set()
    for i in range(0, len(rows), INSERT_CHUNK):
        stmt = (
            insert(table)
            .on_conflict_do_nothing(index_elements=["source", "boot", "seq"])
            .returning(table.c.source, table.c.boot, table.c.seq)
        )
        result = db.connection().execute(stmt, rows[i : i + INSERT_CHUNK])
        inserted.update((s, b, q) for s, b, q in result.all())
    return inserted


def _record_states(db: DbSession, rows: list[dict[str, Any]]) -> None:
    states = [
        dict(
            machine=r["machine"],
            t_ms=r["t_ms"],
            state=str(r["body"]["state"]),
            cause=(str(r["body"]["cause"])[:64] if r["body"].get("cause") is not None else None),
            event_key=f"{r['source']}:{r['boot']}:{r['seq']}",
        )
        for r in rows
        if r["kind"] == GatewayKind.STATE
    ]
    if not states:
        return
    insert = _insert_fn(db)
    stmt = insert(MachineStateChange.__table__).on_conflict_do_nothing(index_elements=["event_key"])
    db.connection().execute(stmt, states)
