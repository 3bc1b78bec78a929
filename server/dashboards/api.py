"""``GET /api/v1/availability``: availability and utilisation per machine per site-local day
(managers and technicians, per server/security/policy.py; the legacy admin token too). ``from``/``to`` are site-local dates, ``to`` inclusive (default: the
last 7 days up to today). See :mod:`server.availability`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..api.deps import Authorized, Db, Settings
from ..availability import MAX_DAYS, AvailabilitySettings, site_availability
from ..errors import invalid, not_found
from ..models import Machine, Site
from ..timeutil import to_ms, zone

router = APIRouter(prefix="/api/v1", tags=["availability"], dependencies=[Authorized])

DEFAULT_DAYS = 7


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise invalid(f"{name}: {value[:40]!r} is not an ISO date (YYYY-MM-DD)") from None


@router.get("/availability")
def get_availability(
    db: Db,
    settings: Settings,
    site: Annotated[str | None, Query(max_length=8)] = None,
    machine: Annotated[str | None, Query(max_length=48)] = None,
    frm: Annotated[str | None, Query(alias="from", max_length=10, description="ISO date (site local)")] = None,
    to: Annotated[str | None, Query(max_length=10, description="ISO date, inclusive (site local)")] = None,
) -> list[dict[str, Any]]:
    code = site or settings.default_site
    if code is None:
        raise invalid("site: required (no default site configured)")
    s = db.get(Site, code)
    if s is None:
        raise not_found("site", code)
    if machine is not None:
        m = db.get(Machine, machine)
        if m is None or m.site != code:
            raise not_found("machine", machine)
    now = dt.datetime.now(dt.timezone.utc)
    today = now.astimezone(zone(s.tz, settings.default_tz)).date()
    day_to = _date(to, "to") or today
    day_from = _date(frm, "from") or day_to - dt.timedelta(days=DEFAULT_DAYS - 1)
    if day_to < day_from:
        raise invalid("to < from")
    if (day_to - day_from).days + 1 > MAX_DAYS:
        raise invalid(f"at most {MAX_DAYS} days at once")
    try:
        hours = AvailabilitySettings().for_site(code)
    except ValueError as e:  # a bad CRP_OPENING_HOURS is the deployer's error, said plainly
        raise invalid(str(e)) from None
    rows = site_availability(db, code, day_from, day_to, machine=machine, hours=hours, now_ms=to_ms(now))
    return [r.as_dict() for r in rows]
