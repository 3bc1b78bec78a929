"""Reads for the manager (bearer ``admin_token``): sessions, usage, denials, summary, dead
letters, machine state history. Dates (``from``/``to``) are site-local days, ``to`` inclusive;
a datetime with an offset is taken as is."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..errors import invalid, not_found
from ..models import Machine
from ..reports import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Filters,
    dead_letters,
    denials,
    list_sessions,
    state_history,
    summary,
    usage_by_artisan,
    usage_by_machine,
)
from ..timeutil import bound_ms
from .deps import Authorized, Db, Settings, site_zone

router = APIRouter(prefix="/api/v1", tags=["reports"], dependencies=[Authorized])

SiteQ = Annotated[str | None, Query(max_length=8)]
MachineQ = Annotated[str | None, Query(max_length=48)]
ArtisanQ = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
FromQ = Annotated[str | None, Query(alias="from", max_length=40, description="ISO date or datetime")]
ToQ = Annotated[str | None, Query(alias="to", max_length=40, description="ISO date (inclusive) or datetime")]
LimitQ = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
OffsetQ = Annotated[int, Query(ge=0, le=10**9)]


def parse_when(value: str | None, name: str) -> dt.date | dt.datetime | None:
    if value is None or value == "":
        return None
    v = value.strip()
    try:
        if len(v) == 10:
            return dt.date.fromisoformat(v)
        return dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{name}: {value[:40]!r} is not an ISO date (YYYY-MM-DD) or datetime") from None


def _filters(db, settings, site, machine, artisan, frm, to) -> Filters:
    tz = site_zone(db, settings, site)
    lo = bound_ms(parse_when(frm, "from"), tz, end=False)
    hi = bound_ms(parse_when(to, "to"), tz, end=True)
    if lo is not None and hi is not None and hi < lo:
        raise invalid("to < from")
    return Filters(site=site, machine=machine, artisan=artisan, lo=lo, hi=hi)


@router.get("/sessions")
def get_sessions(
    db: Db,
    settings: Settings,
    site: SiteQ = None,
    machine: MachineQ = None,
    artisan: ArtisanQ = None,
    frm: FromQ = None,
    to: ToQ = None,
    limit: LimitQ = DEFAULT_LIMIT,
    offset: OffsetQ = 0,
) -> list[dict[str, Any]]:
    f = _filters(db, settings, site, machine, artisan, frm, to)
    return list_sessions(db, f, settings.default_tz, limit=limit, offset=offset)


@router.get("/usage/artisans")
def get_usage_artisans(
    db: Db, settings: Settings, site: SiteQ = None, machine: MachineQ = None, frm: FromQ = None, to: ToQ = None
) -> list[dict[str, Any]]:
    return usage_by_artisan(db, _filters(db, settings, site, machine, None, frm, to))


@router.get("/usage/machines")
def get_usage_machines(
    db: Db, settings: Settings, site: SiteQ = None, artisan: ArtisanQ = None, frm: FromQ = None, to: ToQ = None
) -> list[dict[str, Any]]:
    return usage_by_machine(db, _filters(db, settings, site, None, artisan, frm, to))


@router.get("/denials")
def get_denials(
    db: Db, settings: Settings, site: SiteQ = None, machine: MachineQ = None, frm: FromQ = None, to: ToQ = None
) -> dict[str, int]:
    return denials(db, _filters(db, settings, site, machine, None, frm, to))


@router.get("/summary")
def get_summary(db: Db, settings: Settings, site: SiteQ = None, frm: FromQ = None, to: ToQ = None) -> dict[str, Any]:
    return summary(db, _filters(db, settings, site, None, None, frm, to))


@router.get("/dead-letters")
def get_dead_letters(
    db: Db,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    limit: LimitQ = DEFAULT_LIMIT,
    offset: OffsetQ = 0,
) -> list[dict[str, Any]]:
    return dead_letters(db, limit=limit, offset=offset, reason=reason)


@router.get("/machines/{machine_id}/states")
def get_states(
    machine_id: str, db: Db, settings: Settings, frm: FromQ = None, to: ToQ = None, limit: LimitQ = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    m = db.get(Machine, machine_id)
    if m is None:
        raise not_found("machine", machine_id)
    f = _filters(db, settings, m.site, None, None, frm, to)
    return state_history(db, machine_id, f, site_zone(db, settings, m.site), limit=limit)
