import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.billing.charges import (
    SessionFacts,
    amount_for,
    billed_minutes,
    charge_for,
    local_start_date,
)
from server.billing.errors import BillingError
from server.billing.rates import RateCard, select_card
from server.billing.tax import invoice_totals

UTC = dt.UTC
MIN = 60_000  # ms


def ms(*args) -> int:
    return int(dt.datetime(*args, tzinfo=UTC).timestamp()) * 1000


def brief_card(**kw):
    """The product brief's worked example: 2,000 XOF/h, 15-min increments up, 15-min minimum."""
    base = dict(
        price_per_hour_member=2000,
        price_per_hour_non_member=3000,
        effective_from=dt.date(2026, 1, 1),
        machine_type="bandsaw",
        increment_minutes=15,
        rounding="up",
        minimum_minutes=15,
    )
    base.update(kw)
    return RateCard(**base)


def session(minutes=0, seconds=0, run_ms=0, start=None, machine="bandsaw-1"):
    start = ms(2026, 3, 10, 9, 0) if start is None else start
    return SessionFacts(
        id="s1",
        machine=machine,
        start=start,
        end=start + minutes * MIN + seconds * 1000,
        run_ms=run_ms,
        artisan=1,
    )


# --------------------------------------------------------------------- the worked example


@pytest.mark.parametrize("minutes, billed, amount", [(7, 15, 500), (61, 75, 2500)])
def test_brief_worked_example(minutes, billed, amount):
    line = charge_for(session(minutes), brief_card(), member=True)
    assert line.billed_minutes == billed
    assert line.amount == amount
    assert line.currency == "XOF" and line.rate_per_hour == 2000


def test_charge_line_explains_itself_in_site_local_time():
    # Abidjan/Dakar are UTC+0; Douala (XAF) is UTC+1: 09:00Z is 10:00 local.
    s = session(61, 5)
    line = charge_for(s, brief_card(currency="XAF"), member=True, tz="Africa/Douala")
    assert line.start_local == "2026-03-10T10:00:00+01:00"
    assert line.end_local == "2026-03-10T11:01:05+01:00"
    assert line.measured_seconds == 61 * 60 + 5
    assert line.measured_minutes == 61
    assert line.measured_display == "61 min 05 s"
    assert (line.machine, line.basis, line.currency) == ("bandsaw-1", "badge", "XAF")
    d = line.as_dict()
    assert d["billed_minutes"] == 75 and d["amount"] == 2500


# --------------------------------------------------------------------- hand-computed fixtures


def test_member_and_non_member_prices():
    s = session(40)  # 40 min -> 45 billed
    assert charge_for(s, brief_card(), member=True).amount == 1500  # 45 x 2000 / 60
    assert charge_for(s, brief_card(), member=False).amount == 2250  # 45 x 3000 / 60


def test_run_time_basis_bills_the_motor_time_not_the_badge_time():
    # badged 2 h, the motor ran 22 min 30 s -> 30 min billed at 2,000 -> 1,000
    s = session(120, run_ms=22 * MIN + 30_000)
    line = charge_for(s, brief_card(basis="run"), member=True)
    assert line.measured_seconds == 22 * 60 + 30
    assert (line.billed_minutes, line.amount, line.basis) == (30, 1000, "run")


def test_run_time_never_exceeds_badge_time():
    s = session(10, run_ms=50 * MIN)
    assert charge_for(s, brief_card(basis="run"), member=True).measured_seconds == 600


def test_run_basis_motor_never_ran_bills_nothing():
    line = charge_for(session(90, run_ms=0), brief_card(basis="run"), member=True)
    assert (line.billed_minutes, line.amount) == (0, 0)


def test_rate_change_mid_period_uses_the_session_start_date():
    old = brief_card(effective_to=dt.date(2026, 3, 14))
    new = brief_card(price_per_hour_member=2400, effective_from=dt.date(2026, 3, 15))
    # starts 14 March 23:30 local (Dakar = UTC), ends 15 March 00:31 -> the old price
    s = session(61, start=ms(2026, 3, 14, 23, 30))
    c = select_card([old, new], s.machine, "bandsaw", local_start_date(s, "Africa/Dakar"))
    assert c is old
    assert charge_for(s, c, member=True).amount == 2500
    s2 = session(61, start=ms(2026, 3, 15, 8, 0))
    c2 = select_card([old, new], s2.machine, "bandsaw", local_start_date(s2, "Africa/Dakar"))
    assert charge_for(s2, c2, member=True).amount == 3000  # 75 x 2400 / 60


def test_start_date_is_local_not_utc():
    # 23:30 UTC on 14 March is 00:30 on 15 March in Douala (UTC+1)
    s = session(30, start=ms(2026, 3, 14, 23, 30))
    assert local_start_date(s, "Africa/Douala") == dt.date(2026, 3, 15)
    assert local_start_date(s, "Africa/Dakar") == dt.date(2026, 3, 14)


@pytest.mark.parametrize(
    "rounding, secs, billed",
    [
        ("up", 15 * 60, 15),
        ("up", 15 * 60 + 1, 30),
        ("nearest", 22 * 60 + 29, 15),
        ("nearest", 22 * 60 + 30, 30),  # half an increment goes up
        ("down", 29 * 60 + 59, 15),
        ("down", 30 * 60, 30),
    ],
)
def test_rounding_directions(rounding, secs, billed):
    assert billed_minutes(secs, brief_card(rounding=rounding, minimum_minutes=0)) == billed


def test_grace_and_minimum():
    c = brief_card(grace_minutes=3, minimum_minutes=30)
    assert billed_minutes(0, c) == 0
    assert billed_minutes(180, c) == 0  # exactly the grace: free
    assert billed_minutes(181, c) == 30  # just over: the minimum applies
    assert billed_minutes(31 * 60, c) == 45
    assert billed_minutes(0, brief_card()) == 0  # a zero-length session bills nothing


def test_down_rounding_below_one_increment_still_gets_the_minimum():
    assert billed_minutes(7 * 60, brief_card(rounding="down")) == 15


def test_amount_half_up_hand_computed():
    assert amount_for(1, 2000) == 33  # 33.33
    assert amount_for(1, 2010) == 34  # 33.5 -> 34
    assert amount_for(7, 1000) == 117  # 116.67
    assert amount_for(0, 2000) == 0


def test_eur_card_uses_cents():
    line = charge_for(session(61), brief_card(currency="EUR", price_per_hour_member=1250), True)
    assert line.amount == 1563  # 75 min x 12.50 EUR / 60 = 15.625 -> 15.63 EUR


def test_open_session_is_not_billable():
    s = SessionFacts(id="x", machine="m", start=ms(2026, 3, 1), end=None)
    with pytest.raises(BillingError):
        charge_for(s, brief_card(), True)


def test_datetime_times_are_accepted():
    s = SessionFacts(
        id="x",
        machine="m",
        start=dt.datetime(2026, 3, 1, 9, 0),  # naive = UTC
        end=dt.datetime(2026, 3, 1, 10, 1, tzinfo=UTC),
    )
    assert charge_for(s, brief_card(), True).amount == 2500


# --------------------------------------------------------------------- properties

cards = st.builds(
    brief_card,
    increment_minutes=st.integers(1, 120),
    rounding=st.sampled_from(["up", "nearest", "down"]),
    minimum_minutes=st.integers(0, 120),
    grace_minutes=st.integers(0, 10),
    price_per_hour_member=st.integers(0, 100_000),
)


@given(st.integers(0, 48 * 3600), cards.filter(lambda c: c.rounding == "up"))
def test_billed_never_less_than_measured_when_rounding_up(secs, card):
    billed = billed_minutes(secs, card)
    if secs > card.grace_minutes * 60:
        assert billed * 60 >= secs
        assert billed >= card.minimum_minutes
        assert billed % card.increment_minutes == 0 or billed == card.minimum_minutes
        # and never a whole increment too much (unless the minimum says so)
        assert billed * 60 - secs < card.increment_minutes * 60 or billed == card.minimum_minutes
    else:
        assert billed == 0


@given(st.integers(0, 48 * 3600), st.integers(0, 48 * 3600), cards)
def test_billed_minutes_monotonic_in_measured_time(a, b, card):
    lo, hi = sorted((a, b))
    assert billed_minutes(lo, card) <= billed_minutes(hi, card)


@given(st.integers(0, 48 * 60), st.integers(0, 10**7), st.integers(0, 48 * 3600 * 1000), cards)
def test_amount_never_negative_and_within_half_unit(minutes, price, run_ms, card):
    a = amount_for(minutes, price)
    assert a >= 0
    assert abs(2 * (a * 60 - minutes * price)) <= 60
    line = charge_for(session(120, run_ms=run_ms), card, member=True)
    assert line.amount >= 0 and line.billed_minutes >= 0


@given(st.lists(st.tuples(st.integers(0, 600), st.booleans()), max_size=30), st.integers(0, 10000))
def test_invoice_total_is_sum_of_charge_lines_plus_tax(sessions, bp):
    c = brief_card()
    lines = [
        charge_for(session(m, start=ms(2026, 3, 1) + i * 3_600_000), c, member)
        for i, (m, member) in enumerate(sessions)
    ]
    t = invoice_totals([ln.amount for ln in lines], bp)
    assert t.total == sum(ln.amount for ln in lines) + t.tax


# The fast local-time path used in billing runs must agree with zoneinfo everywhere, clock
# changes and odd historical offsets included.
from hypothesis import given as _given, settings as _settings, strategies as _st  # noqa: E402


@_settings(max_examples=400, deadline=None)
@_given(_st.sampled_from(["Africa/Dakar", "Africa/Douala", "Europe/Paris", "Australia/Lord_Howe",
                          "America/St_Johns", "Africa/Casablanca", "Asia/Kathmandu"]),
        _st.integers(min_value=-2_500_000_000_000, max_value=4_000_000_000_000),
        _st.integers(min_value=0, max_value=40 * 86_400_000))
def test_local_clock_agrees_with_zoneinfo(tz: str, ms: int, length_ms: int) -> None:
    import datetime as _dt
    from zoneinfo import ZoneInfo

    from server.billing.charges import local_clock

    ref = (_dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(milliseconds=ms)).astimezone(ZoneInfo(tz))
    clock = local_clock(tz)
    assert clock.date(ms) == ref.date()
    assert clock.iso(ms) == ref.isoformat(timespec="seconds")
    # a billing run's path: a session's local start day and both ends' text in one call
    end = ms + length_ms
    ref_end = (_dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(milliseconds=end)).astimezone(ZoneInfo(tz))
    assert clock.span(ms, end) == (
        ref.date().toordinal() - _dt.date(1970, 1, 1).toordinal(),
        ref.isoformat(timespec="seconds"),
        ref_end.isoformat(timespec="seconds"),
    )
