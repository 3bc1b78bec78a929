"""Energy on the charge line: a rate card may price the kWh a metered machine (plug, meter)
used during the session, on top of the time. Hand-computed amounts, rounding, and the cases
without a meter or without an energy price."""

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.billing.charges import SessionFacts, charge_for, energy_amount_for, metered_wh
from server.billing.errors import BillingError, RateCardError
from server.billing.rates import RateCard

MIN = 60_000
START = int(dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC).timestamp()) * 1000


def card(**kw) -> RateCard:
    base = dict(price_per_hour_member=2000, price_per_hour_non_member=3000, effective_from=dt.date(2026, 1, 1),
                machine_type="bandsaw", increment_minutes=15, rounding="up", minimum_minutes=15)
    base.update(kw)
    return RateCard(**base)


def session(minutes: int, energy_wh: float | None) -> SessionFacts:
    return SessionFacts(id="s1", machine="bandsaw-1", start=START, end=START + minutes * MIN, run_ms=0,
                        artisan=1, energy_wh=energy_wh)


def test_energy_is_added_to_the_time_hand_computed():
    # 40 min -> 45 min billed at 2,000/h = 1,500; 1,234.5 Wh -> 1,235 Wh x 150 XOF/kWh = 185.25 -> 185
    line = charge_for(session(40, 1234.5), card(price_per_kwh=150), member=True)
    assert (line.energy_wh, line.price_per_kwh, line.energy_amount) == (1235, 150, 185)
    assert (line.time_amount, line.amount) == (1500, 1685)
    d = line.as_dict()
    assert (d["energy_wh"], d["energy_amount"], d["amount"]) == (1235, 185, 1685)


def test_half_a_franc_rounds_up():
    assert energy_amount_for(1500, 1) == 2  # 1.5 XOF
    assert energy_amount_for(1499, 1) == 1
    assert energy_amount_for(500, 1) == 1  # 0.5 XOF


def test_a_card_without_energy_price_bills_time_only_but_the_line_shows_the_energy():
    line = charge_for(session(40, 1234.5), card(), member=True)
    assert (line.energy_wh, line.energy_amount, line.amount) == (1235, 0, 1500)


def test_a_machine_without_meter_bills_no_energy():
    line = charge_for(session(40, None), card(price_per_kwh=150), member=False)
    assert (line.energy_wh, line.energy_amount, line.amount) == (None, 0, 2250)


def test_grace_applies_to_time_not_to_energy():
    line = charge_for(session(3, 80.0), card(price_per_kwh=100, grace_minutes=5, minimum_minutes=0), member=True)
    assert (line.billed_minutes, line.time_amount, line.energy_amount) == (0, 0, 8)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "12"])
def test_bad_metered_energy_is_refused_with_a_reason(bad):
    with pytest.raises(BillingError) as e:
        metered_wh(bad)
    assert e.value.key == "billing.error.bad_energy"


@pytest.mark.parametrize("bad", [-1, 1.5, 10**13])
def test_bad_energy_price_is_refused(bad):
    with pytest.raises(RateCardError):
        card(price_per_kwh=bad)


@given(wh=st.floats(min_value=0, max_value=1e7, allow_nan=False), price=st.integers(0, 10**6))
def test_energy_amount_is_never_negative_and_monotonic(wh, price):
    a = energy_amount_for(metered_wh(wh), price)
    assert a >= 0
    assert energy_amount_for(metered_wh(wh + 1000), price) >= a
    line = charge_for(dataclasses.replace(session(30, wh)), card(price_per_kwh=price), member=True)
    assert line.amount == line.time_amount + a and line.time_amount == 1000


# --------------------------------------------------------------------- through the database


def test_a_billing_run_prices_metered_energy_and_a_credit_note_cancels_it(world):
    import csv
    import io

    from server.billing import service
    from server.billing.export import to_csv
    from server.models import Session

    service.create_rate_card(world.db, "DKR", machine_type="bandsaw", price_per_hour_member=2000,
                             price_per_hour_non_member=3000, increment_minutes=15, minimum_minutes=15,
                             effective_from=dt.date(2026, 1, 1), price_per_kwh=150)
    a = world.artisan("Awa Diop")
    metered = world.session(a.id, START, 40)  # on the bandsaw's plug
    world.session(a.id, START + 3600_000, 20)  # no meter reading: time only
    row = world.db.get(Session, metered.id)
    row.energy_wh = 1234.5
    world.db.commit()
    card = service.list_rate_cards(world.db, "DKR")[0]
    assert service.rate_card_dict(card)["price_per_kwh"] == 150

    inv = service.run_billing(world.db, "DKR", "2026-03", dt.datetime(2026, 4, 1, 8, tzinfo=dt.UTC), tax_bp=0)[0]
    got = [(ln.amount, ln.energy_wh, ln.price_per_kwh, ln.energy_amount) for ln in inv.lines]
    # 40 min -> 45 min = 1,500 + 1,235 Wh x 150/kWh = 185; 20 min -> 30 min = 1,000, no meter
    assert got == [(1685, 1235, 150, 185), (1000, None, 150, 0)]
    assert inv.total == 2685
    read_back = service.invoice_doc(world.db, service.get_invoice(world.db, inv.number))
    assert list(read_back.lines) == [ln._replace(line_id=r.line_id) for ln, r in zip(inv.lines, read_back.lines)]
    rows = list(csv.DictReader(io.StringIO(to_csv([read_back]))))
    assert [(r["amount"], r["energy_wh"], r["energy_amount"]) for r in rows] == [("1685", "1235", "185"),
                                                                                 ("1000", "", "0")]
    cn = service.issue_credit_note(world.db, inv.number, reason="erreur de badge")
    assert [(ln.amount, ln.energy_amount) for ln in cn.lines] == [(-1685, -185), (-1000, 0)]
