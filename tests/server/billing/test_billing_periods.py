import datetime as dt

import pytest

from server.billing.errors import BillingError
from server.billing.periods import Period, parse_period, period_of


def test_parse_and_days():
    p = parse_period("2026-02")
    assert p == Period(2026, 2) and str(p) == "2026-02"
    assert (p.first_day, p.last_day) == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert parse_period("2026-12").next() == Period(2027, 1)
    assert period_of(dt.date(2026, 12, 31)) == Period(2026, 12)


@pytest.mark.parametrize("bad", ["", "2026-13", "2026-00", "26-03", "2026/03", "march", "2026-3"])
def test_bad_period_is_refused(bad):
    with pytest.raises(BillingError) as e:
        parse_period(bad)
    assert e.value.key == "billing.error.bad_period"


def test_utc_bounds_follow_the_site_time_zone():
    start, end = Period(2026, 3).utc_bounds("Africa/Douala")  # UTC+1
    assert start == dt.datetime(2026, 2, 28, 23, 0, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 3, 31, 23, 0, tzinfo=dt.UTC)
    start, end = Period(2026, 3).utc_bounds("Africa/Dakar")  # UTC+0
    assert start == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
