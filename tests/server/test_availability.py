"""Availability and utilisation over opening hours: hand-computed days, the query layer on a
real database (SQLite, and PostgreSQL when TEST_POSTGRES_URL is set), points, the endpoint."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from server.availability import (
    DEFAULT_OPENING_HOURS,
    UNKNOWN,
    AvailabilitySettings,
    StateChange,
    availability_lines,
    compute_day,
    opening_windows,
    parse_opening_hours,
    site_availability,
    timeline,
    unknown_after,
)
from server.models import Machine, MachineStateChange, MachineType, Session, Site

DAKAR = ZoneInfo("Africa/Dakar")  # UTC+0 all year: local hours are UTC hours
DOUALA = ZoneInfo("Africa/Douala")  # UTC+1
MONDAY = dt.date(2026, 3, 2)
HOURS = parse_opening_hours(DEFAULT_OPENING_HOURS)
OPEN_S = 11 * 3600  # 07:30-18:30


def at(day: dt.date, hh: int, mm: int = 0, tz=DAKAR) -> int:
    return int(dt.datetime.combine(day, dt.time(hh, mm), tz).timestamp() * 1000)


def day(changes, prior=None, d=MONDAY, hours=HOURS, **kw):
    return compute_day(site="DKR", machine="bandsaw-1", day=d, tz=DAKAR, hours=hours,
                       changes=changes, prior=prior, **kw)


# --------------------------------------------------------------------------- opening hours


def test_default_opening_hours_monday_to_saturday():
    for wd in range(6):
        assert HOURS.for_weekday(wd) == ((dt.time(7, 30), dt.time(18, 30)),)
    assert HOURS.for_weekday(6) == ()


def test_opening_hours_with_lunch_break_and_short_saturday():
    h = parse_opening_hours("mon-fri 07:30-12:30,14:00-18:30; sat 08:00-13:00")
    assert h.for_weekday(2) == ((dt.time(7, 30), dt.time(12, 30)), (dt.time(14), dt.time(18, 30)))
    assert h.for_weekday(5) == ((dt.time(8), dt.time(13)),)
    assert h.for_weekday(6) == ()
    assert parse_opening_hours("lun,mer 08:00-24:00").for_weekday(2) == ((dt.time(8), dt.time.max),)


@pytest.mark.parametrize("spec", ["", "mon", "mon 7h-18h", "fri-mon 08:00-10:00", "xyz 08:00-10:00",
                                  "mon 10:00-09:00", "mon 08:00-10:00,09:00-11:00", "mon 25:00-26:00"])
def test_bad_opening_hours_are_refused(spec):
    with pytest.raises(ValueError, match="opening hours"):
        parse_opening_hours(spec)


def test_opening_windows_are_site_local_time():
    lo, hi = opening_windows(MONDAY, HOURS, DOUALA)[0]
    assert lo == at(MONDAY, 6, 30, dt.timezone.utc)  # 07:30 in Douala is 06:30 UTC
    assert hi == at(MONDAY, 17, 30, dt.timezone.utc)


def test_settings_per_site(monkeypatch):
    monkeypatch.setenv("CRP_SITE_OPENING_HOURS", '{"DLA": "mon-fri 08:00-17:00"}')
    s = AvailabilitySettings(_env_file=None)
    assert s.for_site("DKR") == HOURS
    assert s.for_site("DLA").for_weekday(5) == ()


# --------------------------------------------------------------------------- timeline


def test_timeline_carries_prior_state_and_merges_repeats():
    segs = timeline([StateChange(100, "available"), StateChange(200, "available"), StateChange(300, "fault")],
                    150, 400, prior="offline")
    assert segs == [(150, 300, "available"), (300, 400, "fault")]
    assert timeline([], 0, 10) == [(0, 10, UNKNOWN)]
    # the same instant twice: the later recorded change wins
    assert timeline([StateChange(5, "in_use"), StateChange(5, "available")], 0, 10, "offline") == [
        (0, 5, "offline"), (5, 10, "available")]


def test_unknown_after_now():
    assert unknown_after([(0, 10, "available"), (10, 20, "in_use")], 15) == [
        (0, 10, "available"), (10, 15, "in_use"), (15, 20, UNKNOWN)]


# --------------------------------------------------------------------------- hand-computed days


def test_change_before_opening_counts_from_opening():
    # 06:00 available (before opening), 09:00-11:00 in use
    d = day([StateChange(at(MONDAY, 6), "available"), StateChange(at(MONDAY, 9), "in_use"),
             StateChange(at(MONDAY, 11), "available")])
    assert d.open_s == OPEN_S
    assert d.open_state_s == {"available": OPEN_S - 7200, "in_use": 7200}
    assert d.day_state_s == {UNKNOWN: 6 * 3600, "available": 16 * 3600, "in_use": 7200}
    assert d.availability == 1.0
    assert d.utilisation == pytest.approx(7200 / OPEN_S)


def test_fault_across_lunch_counts_only_opening_hours():
    lunch = parse_opening_hours("mon-sat 07:30-12:30,14:00-18:30")
    d = day([StateChange(at(MONDAY, 12), "fault"), StateChange(at(MONDAY, 15), "available")],
            prior="available", hours=lunch)
    # open 5 h + 4 h 30 = 34,200 s; fault 12:00-12:30 and 14:00-15:00 = 5,400 s (not 3 h)
    assert d.open_s == 34_200
    assert d.open_state_s == {"available": 28_800, "fault": 5_400}
    assert d.day_state_s == {"available": 86_400 - 10_800, "fault": 10_800}
    assert d.availability == pytest.approx(28_800 / 34_200)
    assert d.utilisation == 0.0


def test_day_without_changes_carries_previous_state():
    monday_5pm = StateChange(at(MONDAY, 17), "maintenance")
    tuesday = MONDAY + dt.timedelta(days=1)
    d = day([monday_5pm], prior="available", d=tuesday)
    assert d.open_state_s == {"maintenance": OPEN_S}
    assert d.day_state_s == {"maintenance": 86_400}
    assert d.availability == 0.0


def test_sunday_has_no_opening_hours():
    d = day([], prior="available", d=MONDAY - dt.timedelta(days=1))
    assert d.open_s == 0 and d.availability is None and d.utilisation is None and d.run_utilisation is None
    assert d.day_state_s == {"available": 86_400}


def test_time_before_first_state_is_unknown_and_left_out():
    d = day([StateChange(at(MONDAY, 12), "available"), StateChange(at(MONDAY, 14), "offline")])
    assert d.known_open_s == 6 * 3600 + 1800  # 12:00-18:30
    assert d.open_state_s == {UNKNOWN: 4 * 3600 + 1800, "available": 7200, "offline": 4 * 3600 + 1800}
    assert d.availability == pytest.approx(7200 / 23_400)


def test_today_is_counted_up_to_now():
    d = day([StateChange(at(MONDAY, 9), "in_use")], prior="available", until_ms=at(MONDAY, 10))
    assert d.known_open_s == 9000  # 07:30-10:00
    assert d.open_state_s == {"available": 5400, "in_use": 3600, UNKNOWN: OPEN_S - 9000}
    assert d.utilisation == pytest.approx(3600 / 9000)


def test_run_utilisation_is_run_time_over_opening_hours():
    d = day([], prior="available", run_ms=3_960_000)  # 1.1 h
    assert d.run_s == 3960
    assert d.run_utilisation == pytest.approx(0.1)


def test_availability_points():
    d = day([StateChange(at(MONDAY, 9), "in_use"), StateChange(at(MONDAY, 11), "available")], prior="available")
    d2 = compute_day(site="DKR", machine="lathe 2", day=MONDAY - dt.timedelta(days=1), tz=DAKAR, hours=HOURS,
                     changes=[], prior=None)
    l1, l2 = availability_lines([d, d2], {"DKR": DAKAR})
    assert l1 == (
        f"machine_availability,machine=bandsaw-1,site=DKR open_s={OPEN_S}i,known_open_s={OPEN_S}i,run_s=0i,"
        f"availability=1.0,utilisation={7200 / OPEN_S!r},run_utilisation=0.0,s_available={OPEN_S - 7200}i,"
        f"s_in_use=7200i,s_maintenance=0i,s_fault=0i,s_offline=0i {at(MONDAY, 0)}"
    )
    assert l2.startswith(r"machine_availability,machine=lathe\ 2,site=DKR open_s=0i,known_open_s=0i,run_s=0i,s_")
    assert "availability=" not in l2  # undefined on a closed day: no field rather than a fake 0


# --------------------------------------------------------------------------- database


def seed(db):
    db.add_all([Site(code="DKR", name="CRP Dakar", tz="Africa/Dakar"),
                MachineType(code="bandsaw", name_fr="Scie", name_en="Bandsaw"),
                MachineType(code="lathe", name_fr="Tour", name_en="Lathe")])
    db.flush()
    db.add_all([Machine(id="bandsaw-1", site="DKR", type="bandsaw", name="Scie 1"),
                Machine(id="lathe-1", site="DKR", type="lathe", name="Tour 1")])
    sunday = MONDAY - dt.timedelta(days=1)
    for i, (m, t, state) in enumerate([
        ("bandsaw-1", at(sunday, 20), "available"),
        ("bandsaw-1", at(MONDAY, 9), "in_use"),
        ("bandsaw-1", at(MONDAY, 10, 30), "available"),
        ("bandsaw-1", at(MONDAY, 16), "fault"),
        ("lathe-1", at(MONDAY, 12), "maintenance"),
    ]):
        db.add(MachineStateChange(machine=m, t_ms=t, state=state, cause="test", event_key=f"k:{i}"))
    db.add(Session(id="s1", site="DKR", machine="bandsaw-1", start_ms=at(MONDAY, 9), end_ms=at(MONDAY, 10, 30),
                   run_ms=3_600_000, last_ms=at(MONDAY, 10, 30), open=False))
    db.commit()


def test_site_availability_from_the_database(db_session):
    seed(db_session)
    tuesday = MONDAY + dt.timedelta(days=1)
    rows = site_availability(db_session, "DKR", MONDAY, tuesday, hours=HOURS)
    by = {(r.machine, r.day): r for r in rows}
    assert sorted(by) == [("bandsaw-1", MONDAY), ("bandsaw-1", tuesday), ("lathe-1", MONDAY), ("lathe-1", tuesday)]
    b = by["bandsaw-1", MONDAY]
    # available 07:30-09:00 and 10:30-16:00, in use 1 h 30, fault 16:00-18:30
    assert b.open_state_s == {"available": 5400 + 19_800, "in_use": 5400, "fault": 9000}
    assert b.availability == pytest.approx((OPEN_S - 9000) / OPEN_S)
    assert b.utilisation == pytest.approx(5400 / OPEN_S)
    assert b.run_s == 3600 and b.run_utilisation == pytest.approx(3600 / OPEN_S)
    assert by["bandsaw-1", tuesday].open_state_s == {"fault": OPEN_S}  # carried over the night
    lathe = by["lathe-1", MONDAY]
    assert lathe.known_open_s == 6 * 3600 + 1800 and lathe.availability == 0.0
    assert by["lathe-1", tuesday].availability == 0.0
    only = site_availability(db_session, "DKR", MONDAY, MONDAY, machine="lathe-1", hours=HOURS)
    assert [r.machine for r in only] == ["lathe-1"]
    with pytest.raises(LookupError):
        site_availability(db_session, "XXX", MONDAY, MONDAY)
    with pytest.raises(ValueError):
        site_availability(db_session, "DKR", tuesday, MONDAY)


def test_availability_endpoint(api, db_session):
    seed(db_session)
    r = api.get("/api/v1/availability", params={"site": "DKR", "from": "2026-03-02", "to": "2026-03-03"})
    assert r.status_code == 200, r.text
    rows = r.json()
    assert len(rows) == 4
    b = next(x for x in rows if x["machine"] == "bandsaw-1" and x["day"] == "2026-03-02")
    assert b["open_state_s"]["fault"] == 9000 and b["utilisation"] == pytest.approx(5400 / OPEN_S)
    r = api.get("/api/v1/availability", params={"site": "DKR", "machine": "lathe-1", "from": "2026-03-02",
                                                "to": "2026-03-02"})
    assert [x["machine"] for x in r.json()] == ["lathe-1"]


@pytest.mark.parametrize("params,status", [
    ({"site": "XXX"}, 404),
    ({"site": "DKR", "machine": "nope"}, 404),
    ({"site": "DKR", "from": "2026-03-05", "to": "2026-03-01"}, 422),
    ({"site": "DKR", "from": "yesterday"}, 422),
    ({"site": "DKR", "from": "2024-01-01", "to": "2026-01-01"}, 422),
    ({}, 422),
])
def test_availability_endpoint_bad_input(api, db_session, params, status):
    seed(db_session)
    r = api.get("/api/v1/availability", params=params)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_availability_endpoint_needs_the_manager_token(api, db_session):
    r = api.get("/api/v1/availability", params={"site": "DKR"}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
