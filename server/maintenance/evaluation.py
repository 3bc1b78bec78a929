"""Server-side evaluation, from the events the gateways forward and from the clock.

- :func:`on_events` (called by ingestion once new events are stored and sessions re-derived):
  fault alerts from node ``fault`` events, condition and fault alerts from the gateway's
  ``alert`` facts, offline alerts resolved when a machine comes back, run-hour plans recounted.
- :func:`evaluate` (called from the server's background loop and ``crp alerts evaluate``):
  calendar plans, machines offline beyond :data:`OFFLINE_ALERT_AFTER_S`, escalation.

The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session as DbSession

from crp_common.contract import MachineState
from crp_common.events import GatewayKind

from ..models import Machine, MachineStateChange
from ..timeutil import ms_to_utc
from .alerts import clear, escalate, find_open, raise_alert
from .models import Alert, MaintenancePlan
from .plans import plans_for, refresh_calendar, refresh_run_hours
from .rules import DEFAULT_CRITICAL_FAULTS, event_key, fault_cause, offline_cause

# A machine whose node the gateway reported offline this long ago (and not back) gets an
# offline alert.
OFFLINE_ALERT_AFTER_S = 15 * 60


class AlertBody(BaseModel):
    """The body of a gateway ``alert`` fact (see crp_common.events.GatewayKind.ALERT)."""

    model_config = ConfigDict(extra="allow")
    cause: str = Field(min_length=1, max_length=80)
    # "interlock": a plug that does not follow its machine's session (gateway/plugs); recorded
    # as a condition alert whose cause names the plug.
    kind: Literal["condition", "fault", "interlock"]
    state: Literal["raised", "cleared"]
    metric: Literal["temp", "vib", "current"] | None = None
    value: float | None = None
    limit: float | None = None
    for_s: int | None = None
    code: str | None = Field(default=None, max_length=16)
    critical: bool = False


@dataclass
class _Ev:
    key: str
    kind: str
    machine: str
    t_ms: int
    body: dict[str, Any] = field(default_factory=dict)


def _norm(e: Any) -> _Ev | None:
    get = e.get if isinstance(e, dict) else (lambda k, d=None: getattr(e, k, d))
    machine = get("machine")
    t = get("t_ms")
    if t is None:
        t = get("t")
    if machine is None or t is None:
        return None
    return _Ev(event_key(get("source"), int(get("boot")), int(get("seq"))), str(get("kind")), str(machine), int(t),
               dict(get("body") or {}))


class _Run:
    def __init__(self, db: DbSession):
        self.db = db
        self.machines: dict[str, Machine | None] = {}
        self.raised: list[Alert] = []

    def machine(self, mid: str) -> Machine | None:
        if mid not in self.machines:
            self.machines[mid] = self.db.get(Machine, mid)
        return self.machines[mid]

    def lock(self, m: Machine, reason: str) -> None:
        if not m.locked:
            m.locked = True
            m.lock_reason = reason

    def fault(self, m: Machine, code: str, active: bool, at: dt.datetime, key: str, critical_hint: bool | None) -> None:
        cause = fault_cause(code)
        if not active:
            a = find_open(self.db, m.id, cause)
            if a is not None:
                clear(self.db, a, at)
            return
        plan = next((p for p in plans_for(self.db, m, ("fault",)) if p.fault_code == code), None)
        if plan is not None:
            critical = plan.critical
        elif critical_hint is not None:
            critical = critical_hint or code in DEFAULT_CRITICAL_FAULTS
        else:
            critical = code in DEFAULT_CRITICAL_FAULTS
        a, new = raise_alert(self.db, m, "fault", cause, at, plan_id=plan.id if plan else None, critical=critical,
                             detail={"code": code}, source_event=key)
        if new and a is not None:
            self.raised.append(a)
            if critical:
                self.lock(m, cause)

    def condition(self, m: Machine, body: AlertBody, at: dt.datetime, key: str) -> None:
        if body.state == "cleared":
            a = find_open(self.db, m.id, body.cause)
            if a is not None:
                clear(self.db, a, at)
            return
        plan = None
        rule_id = body.cause.partition(":")[2]
        if rule_id.isdigit():
            plan = self.db.get(MaintenancePlan, int(rule_id))
        critical = body.critical or bool(plan and plan.critical)
        detail = {k: v for k, v in body.model_dump().items() if k in ("metric", "value", "limit", "for_s") and v is not None}
        if plan is not None:
            detail["task"] = plan.task
        a, new = raise_alert(self.db, m, "condition", body.cause, at, plan_id=plan.id if plan else None,
                             critical=critical, detail=detail, source_event=key)
        if new and a is not None:
            self.raised.append(a)
            if critical:
                self.lock(m, body.cause)

    def event(self, e: _Ev) -> None:
        m = self.machine(e.machine)
        if m is None:
            return
        at = ms_to_utc(e.t_ms)
        if e.kind == "fault":
            code = e.body.get("code")
            if isinstance(code, str) and code:
                self.fault(m, code, bool(e.body.get("active")), at, e.key, None)
        elif e.kind == GatewayKind.ALERT:
            try:
                body = AlertBody.model_validate(e.body)
            except ValidationError:
                return  # ingestion validates alert bodies; a bad one changes nothing here
            if body.kind == "fault":
                code = body.code or body.cause.partition(":")[2]
                if code:
                    self.fault(m, code, body.state == "raised", at, e.key, body.critical)
            else:
                self.condition(m, body, at, e.key)
        elif e.kind == GatewayKind.STATE and e.body.get("state") not in (None, MachineState.OFFLINE):
            a = find_open(self.db, m.id, offline_cause())
            if a is not None:
                clear(self.db, a, at)


def on_events(db: DbSession, events: Iterable[Any]) -> list[Alert]:
    """Evaluate newly stored events (dicts as ingestion stores them, with ``t_ms`` or ``t``,
    or :class:`server.models.Event` rows). Safe to call twice with the same events: alerts
    remember the event that raised them and counters are recomputed. Returns new alerts."""
    evs = sorted((e for e in map(_norm, events) if e is not None), key=lambda e: (e.t_ms, e.key))
    run = _Run(db)
    latest: dict[str, int] = {}
    for e in evs:
        run.event(e)
        latest[e.machine] = max(latest.get(e.machine, e.t_ms), e.t_ms)
    for mid in sorted(latest):
        m = run.machine(mid)
        if m is not None:
            refresh_run_hours(db, m, ms_to_utc(latest[mid]))
    if latest:
        run.raised.extend(check_offline(db, max(latest.values())))
    db.flush()
    return run.raised


def check_offline(db: DbSession, now_ms: int) -> list[Alert]:
    """Offline alerts for machines whose latest recorded state is offline since
    :data:`OFFLINE_ALERT_AFTER_S` or longer at ``now_ms``."""
    latest: dict[str, MachineStateChange] = {}
    limit_ms = int(OFFLINE_ALERT_AFTER_S * 1000)
    last = (
        select(MachineStateChange.machine, func.max(MachineStateChange.t_ms).label("t"))
        .group_by(MachineStateChange.machine)
        .subquery()
    )
    for sc in db.scalars(
        select(MachineStateChange)
        .join(last, and_(MachineStateChange.machine == last.c.machine, MachineStateChange.t_ms == last.c.t))
        .order_by(MachineStateChange.id)
    ):
        latest[sc.machine] = sc  # the same time twice: the later recorded wins
    out: list[Alert] = []
    for mid, sc in sorted(latest.items()):
        if sc.state != MachineState.OFFLINE or now_ms - sc.t_ms < limit_ms:
            continue
        m = db.get(Machine, mid)
        if m is None:
            continue
        a, new = raise_alert(db, m, "offline", offline_cause(), ms_to_utc(sc.t_ms + limit_ms),
                             detail={"since": sc.t_ms, "cause": sc.cause}, source_event=f"offline:{sc.event_key}")
        if new and a is not None:
            out.append(a)
    return out


def evaluate_calendar(db: DbSession, now: dt.datetime) -> None:
    for plan in db.scalars(
        select(MaintenancePlan).where(MaintenancePlan.enabled.is_(True), MaintenancePlan.kind == "calendar_days")
        .order_by(MaintenancePlan.id)
    ):
        refresh_calendar(db, plan, now)


def evaluate(db: DbSession, now: dt.datetime) -> dict[str, int]:
    """One pass of the clock-driven rules: calendar plans, offline machines, escalation."""
    evaluate_calendar(db, now)
    offline = check_offline(db, int(now.timestamp() * 1000))
    escalated = escalate(db, now)
    db.flush()
    return {"offline": len(offline), "escalated": len(escalated)}
