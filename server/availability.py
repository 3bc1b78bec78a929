"""Availability and utilisation per machine per site-local day, counted over opening hours.

From a machine's state timeline (``machine_state_changes``: available, in_use, maintenance,
fault, offline), for each site-local day:

- ``open_state_s`` / ``day_state_s``: seconds spent in each state during the opening hours /
  during the whole local day;
- ``availability`` = share of the opening hours the machine was **not** down (maintenance,
  fault, offline): ``(known_open - down) / known_open``;
- ``utilisation`` = share of the opening hours it was ``in_use``;
- ``run_utilisation`` = motor run time (``sessions.run_ms``) of the sessions that started that
  day, over the opening hours (it can pass 1 when a machine runs long after closing time).

A day without a state change carries the state in force at its start (the last change before
it). Time before a machine's first recorded state (and time after ``until_ms``, i.e. the
future) is ``unknown``: it is left out of ``known_open_s``, so a machine installed at noon is
judged on its afternoon. A day with no opening hours (Sunday by default) has ``availability``
and ``utilisation`` None.

Opening hours: :data:`DEFAULT_OPENING_HOURS` (07:30–18:30, Monday to Saturday, site local
time), overridden by ``CRP_OPENING_HOURS`` for every site and ``CRP_SITE_OPENING_HOURS``
(JSON, site code -> spec) per site; the spec syntax is in :func:`parse_opening_hours`.

Pure functions first (no database, no clock), then the query layer, then InfluxDB points.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from crp_common.contract import MachineState

from .models import Machine, MachineStateChange, Session, Site
from .telemetry.points import escape_key, escape_measurement
from .timeutil import to_ms, zone

DEFAULT_OPENING_HOURS = "mon-sat 07:30-18:30"
STATES: tuple[str, ...] = tuple(s.value for s in MachineState)
DOWN_STATES = frozenset({MachineState.MAINTENANCE.value, MachineState.FAULT.value, MachineState.OFFLINE.value})
UNKNOWN = "unknown"
MAX_DAYS = 366  # longest range computed in one call
MEASUREMENT = "machine_availability"

_DAY_NAMES = {
    "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
    "lun": 0, "mar": 1, "mer": 2, "jeu": 3, "ven": 4, "sam": 5, "dim": 6,
}
_WINDOW_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


# --------------------------------------------------------------------------- opening hours


@dataclass(frozen=True)
class OpeningHours:
    """Opening windows per weekday (0 = Monday), site local time, each ``(start, end)`` with
    ``start < end`` on the same day, sorted and not overlapping."""

    windows: tuple[tuple[tuple[dt.time, dt.time], ...], ...]  # 7 entries

    def for_weekday(self, weekday: int) -> tuple[tuple[dt.time, dt.time], ...]:
        return self.windows[weekday]


def parse_opening_hours(spec: str) -> OpeningHours:
    """``"mon-sat 07:30-18:30"``; several groups separated by ``;``, several windows by ``,``:
    ``"mon-fri 07:30-12:30,14:00-18:30; sat 08:00-13:00"``. Days: mon tue wed thu fri sat sun
    (or lun mar mer jeu ven sam dim), a range ``mon-fri`` or a list ``mon,wed``. A day named in
    no group is closed; ``24:00`` ends a window at midnight. Raises ValueError with the reason."""
    days: list[list[tuple[dt.time, dt.time]]] = [[] for _ in range(7)]
    groups = [g.strip() for g in spec.split(";") if g.strip()]
    if not groups:
        raise ValueError("opening hours: empty specification")
    for group in groups:
        parts = group.split()
        if len(parts) != 2:
            raise ValueError(f"opening hours: {group!r} must be '<days> <HH:MM-HH:MM>[,...]'")
        day_spec, window_spec = parts
        for d in _parse_days(day_spec.lower()):
            days[d].extend(_parse_window(w) for w in window_spec.split(","))
    for d, ws in enumerate(days):
        ws.sort()
        for (_, end), (start, _) in zip(ws, ws[1:]):
            if start < end:
                raise ValueError(f"opening hours: overlapping windows on day {d}")
    return OpeningHours(tuple(tuple(ws) for ws in days))


def _parse_days(spec: str) -> list[int]:
    out: list[int] = []
    for item in spec.split(","):
        lo, sep, hi = item.partition("-")
        if lo not in _DAY_NAMES or (sep and hi not in _DAY_NAMES):
            raise ValueError(f"opening hours: unknown day in {item!r}")
        a, b = _DAY_NAMES[lo], _DAY_NAMES[hi] if sep else _DAY_NAMES[lo]
        if b < a:
            raise ValueError(f"opening hours: day range {item!r} goes backwards")
        out.extend(range(a, b + 1))
    return out


def _parse_window(spec: str) -> tuple[dt.time, dt.time]:
    m = _WINDOW_RE.match(spec.strip())
    if not m:
        raise ValueError(f"opening hours: {spec!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"opening hours: {spec!r} is not a valid time range")
    start = dt.time(h1, m1)
    end = dt.time.max if h2 == 24 else dt.time(h2, m2)
    if end <= start:
        raise ValueError(f"opening hours: {spec!r} ends before it starts")
    return start, end


class AvailabilitySettings(BaseSettings):
    """``CRP_OPENING_HOURS`` (every site) and ``CRP_SITE_OPENING_HOURS`` (JSON object, site
    code -> spec, e.g. ``{"DKR": "mon-fri 08:00-17:00; sat 08:00-12:00"}``)."""

    model_config = SettingsConfigDict(env_prefix="CRP_", env_file=".env", extra="ignore")

    opening_hours: str = DEFAULT_OPENING_HOURS
    site_opening_hours: dict[str, str] = Field(default_factory=dict)

    def for_site(self, site: str) -> OpeningHours:
        return parse_opening_hours(self.site_opening_hours.get(site, self.opening_hours))


# --------------------------------------------------------------------------- pure computation


@dataclass(frozen=True)
class StateChange:
    t_ms: int
    state: str


Segment = tuple[int, int, str]  # [start_ms, end_ms) in a state


def timeline(changes: Sequence[StateChange], lo_ms: int, hi_ms: int, prior: str | None = None) -> list[Segment]:
    """The states over ``[lo_ms, hi_ms)``: ``changes`` in time order (same time: the later one
    wins); changes before ``lo_ms`` update the starting state, which is ``prior`` or
    :data:`UNKNOWN`. Adjacent segments in the same state are merged."""
    cur = prior or UNKNOWN
    t = lo_ms
    out: list[Segment] = []
    for c in changes:
        if c.t_ms >= hi_ms:
            break
        if c.t_ms > t:
            _push(out, (t, c.t_ms, cur))
            t = c.t_ms
        cur = c.state
    if hi_ms > t:
        _push(out, (t, hi_ms, cur))
    return out


def _push(out: list[Segment], seg: Segment) -> None:
    if out and out[-1][2] == seg[2] and out[-1][1] == seg[0]:
        out[-1] = (out[-1][0], seg[1], seg[2])
    else:
        out.append(seg)


def time_in_states(segments: Iterable[Segment], windows: Iterable[tuple[int, int]]) -> dict[str, int]:
    """Milliseconds in each state within the windows (overlap of segments and windows)."""
    ws = list(windows)
    out: dict[str, int] = {}
    for s, e, state in segments:
        for wl, wh in ws:
            n = min(e, wh) - max(s, wl)
            if n > 0:
                out[state] = out.get(state, 0) + n
    return out


def day_bounds(day: dt.date, tz: dt.tzinfo) -> tuple[int, int]:
    """Local midnight to the next local midnight, in UTC epoch ms."""
    start = dt.datetime.combine(day, dt.time(0), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz)
    return to_ms(start), to_ms(end)


def opening_windows(day: dt.date, hours: OpeningHours, tz: dt.tzinfo) -> list[tuple[int, int]]:
    """The day's opening windows in UTC epoch ms."""
    _, midnight_after = day_bounds(day, tz)
    out = []
    for start, end in hours.for_weekday(day.weekday()):
        lo = to_ms(dt.datetime.combine(day, start, tz))
        hi = midnight_after if end == dt.time.max else to_ms(dt.datetime.combine(day, end, tz))
        out.append((lo, hi))
    return out


@dataclass(frozen=True)
class DayAvailability:
    site: str
    machine: str
    machine_type: str | None
    day: dt.date
    open_s: int  # opening hours of the day
    known_open_s: int  # opening hours with a known state (before until_ms)
    open_state_s: dict[str, int] = field(default_factory=dict)  # state -> s in opening hours
    day_state_s: dict[str, int] = field(default_factory=dict)  # state -> s over the local day
    run_s: int = 0  # motor run time of the sessions that started this day
    availability: float | None = None
    utilisation: float | None = None
    run_utilisation: float | None = None

    def as_dict(self) -> dict:
        return {
            "site": self.site, "machine": self.machine, "machine_type": self.machine_type,
            "day": self.day.isoformat(), "open_s": self.open_s, "known_open_s": self.known_open_s,
            "open_state_s": dict(self.open_state_s), "day_state_s": dict(self.day_state_s),
            "run_s": self.run_s, "availability": self.availability, "utilisation": self.utilisation,
            "run_utilisation": self.run_utilisation,
        }


def _seconds(ms_by_state: Mapping[str, int]) -> dict[str, int]:
    return {s: round(ms / 1000) for s, ms in ms_by_state.items() if ms > 0}


def compute_day(
    *,
    site: str,
    machine: str,
    day: dt.date,
    tz: dt.tzinfo,
    hours: OpeningHours,
    changes: Sequence[StateChange],
    prior: str | None,
    run_ms: int = 0,
    machine_type: str | None = None,
    until_ms: int | None = None,
) -> DayAvailability:
    """One machine, one local day. ``changes`` in time order (those before the day may be
    included: they set the starting state, as ``prior`` does); nothing is known after
    ``until_ms`` (now)."""
    lo, hi = day_bounds(day, tz)
    segments = timeline(changes, lo, hi, prior)
    if until_ms is not None:
        segments = unknown_after(segments, until_ms)
    windows = opening_windows(day, hours, tz)
    open_ms = sum(h - l for l, h in windows)
    in_open = time_in_states(segments, windows)
    whole = time_in_states(segments, [(lo, hi)])
    known_ms = open_ms - in_open.get(UNKNOWN, 0)
    down_ms = sum(in_open.get(s, 0) for s in DOWN_STATES)
    availability = utilisation = run_util = None
    if known_ms > 0:
        availability = (known_ms - down_ms) / known_ms
        utilisation = in_open.get(MachineState.IN_USE.value, 0) / known_ms
    if open_ms > 0:
        run_util = run_ms / open_ms
    return DayAvailability(
        site=site, machine=machine, machine_type=machine_type, day=day, open_s=round(open_ms / 1000),
        known_open_s=round(known_ms / 1000), open_state_s=_seconds(in_open), day_state_s=_seconds(whole),
        run_s=round(run_ms / 1000), availability=availability, utilisation=utilisation, run_utilisation=run_util,
    )


def unknown_after(segments: Iterable[Segment], until_ms: int) -> list[Segment]:
    """The same segments with everything from ``until_ms`` on (the future) made unknown."""
    out: list[Segment] = []
    for s, e, st in segments:
        if e <= until_ms:
            _push(out, (s, e, st))
        elif s >= until_ms:
            _push(out, (s, e, UNKNOWN))
        else:
            _push(out, (s, until_ms, st))
            _push(out, (until_ms, e, UNKNOWN))
    return out


def local_days(day_from: dt.date, day_to: dt.date) -> list[dt.date]:
    """Every day from ``day_from`` to ``day_to`` inclusive."""
    if day_to < day_from:
        raise ValueError("to < from")
    n = (day_to - day_from).days + 1
    if n > MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS} days at once")
    return [day_from + dt.timedelta(days=i) for i in range(n)]


# --------------------------------------------------------------------------- database


def load_changes(db: DbSession, machine: str, lo_ms: int, hi_ms: int) -> tuple[str | None, list[StateChange]]:
    """The state in force at ``lo_ms`` (None if none recorded yet) and the changes in
    ``[lo_ms, hi_ms)``, in time order (same time: recording order)."""
    prior = db.scalar(
        select(MachineStateChange.state)
        .where(MachineStateChange.machine == machine, MachineStateChange.t_ms < lo_ms)
        .order_by(MachineStateChange.t_ms.desc(), MachineStateChange.id.desc())
        .limit(1)
    )
    rows = db.execute(
        select(MachineStateChange.t_ms, MachineStateChange.state)
        .where(MachineStateChange.machine == machine, MachineStateChange.t_ms >= lo_ms,
               MachineStateChange.t_ms < hi_ms)
        .order_by(MachineStateChange.t_ms, MachineStateChange.id)
    ).all()
    return prior, [StateChange(int(t), str(s)) for t, s in rows]


def run_ms_by_day(db: DbSession, machine: str, lo_ms: int, hi_ms: int, tz: dt.tzinfo) -> dict[dt.date, int]:
    """Motor run time of the machine's sessions by the local day they started."""
    out: dict[dt.date, int] = {}
    for start_ms, run_ms in db.execute(
        select(Session.start_ms, Session.run_ms)
        .where(Session.machine == machine, Session.start_ms >= lo_ms, Session.start_ms < hi_ms)
    ):
        day = dt.datetime.fromtimestamp(start_ms / 1000, dt.timezone.utc).astimezone(tz).date()
        out[day] = out.get(day, 0) + int(run_ms or 0)
    return out


def site_availability(
    db: DbSession,
    site: str,
    day_from: dt.date,
    day_to: dt.date,
    *,
    machine: str | None = None,
    hours: OpeningHours | None = None,
    now_ms: int | None = None,
) -> list[DayAvailability]:
    """Every machine of ``site`` (or just ``machine``), every local day from ``day_from`` to
    ``day_to`` inclusive. Raises LookupError for an unknown site or machine, ValueError for a
    bad range. ``hours`` default: :class:`AvailabilitySettings` for the site."""
    s = db.get(Site, site)
    if s is None:
        raise LookupError(f"site {site}")
    days = local_days(day_from, day_to)
    tz = zone(s.tz)
    hours = hours or AvailabilitySettings().for_site(site)
    q = select(Machine).where(Machine.site == site).order_by(Machine.id)
    if machine is not None:
        q = q.where(Machine.id == machine)
    machines = list(db.scalars(q))
    if machine is not None and not machines:
        raise LookupError(f"machine {machine}")
    lo, _ = day_bounds(days[0], tz)
    _, hi = day_bounds(days[-1], tz)
    out: list[DayAvailability] = []
    for m in machines:
        prior, changes = load_changes(db, m.id, lo, hi)
        runs = run_ms_by_day(db, m.id, lo, hi, tz)
        for day in days:
            out.append(compute_day(site=site, machine=m.id, machine_type=m.type, day=day, tz=tz, hours=hours,
                                   changes=changes, prior=prior, run_ms=runs.get(day, 0), until_ms=now_ms))
    return out


# --------------------------------------------------------------------------- InfluxDB points


def availability_lines(days: Iterable[DayAvailability], tz_by_site: Mapping[str, dt.tzinfo]) -> list[str]:
    """Line protocol for measurement :data:`MEASUREMENT`, one point per machine and day,
    stamped at the local midnight that starts the day (rewriting a day overwrites its point).
    Tags: site, machine, machine_type. Fields: ``availability``, ``utilisation``,
    ``run_utilisation`` (floats 0..1, absent when undefined), ``open_s``, ``known_open_s``,
    ``run_s`` and ``s_<state>`` (seconds in each state during opening hours) as integers."""
    lines = []
    for d in days:
        tags = [("machine", d.machine)]
        if d.machine_type:
            tags.append(("machine_type", d.machine_type))
        tags.append(("site", d.site))
        fields = [f"open_s={d.open_s}i", f"known_open_s={d.known_open_s}i", f"run_s={d.run_s}i"]
        for name in ("availability", "utilisation", "run_utilisation"):
            v = getattr(d, name)
            if v is not None:
                fields.append(f"{name}={float(v)!r}")
        for state in STATES:
            fields.append(f"s_{state}={d.open_state_s.get(state, 0)}i")
        t, _ = day_bounds(d.day, tz_by_site[d.site])
        tag_str = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in tags)
        lines.append(f"{escape_measurement(MEASUREMENT)}{tag_str} {','.join(fields)} {t}")
    return lines
