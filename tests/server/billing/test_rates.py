import datetime as dt

import pytest

from server.billing.errors import RateCardError
from server.billing.rates import RateCard, check_no_overlap, find_overlap, select_card

D = dt.date


def card(**kw):
    base = dict(
        price_per_hour_member=2000,
        price_per_hour_non_member=3000,
        effective_from=D(2026, 1, 1),
        machine_type="bandsaw",
    )
    base.update(kw)
    return RateCard(**base)


def test_defaults_are_xof_badge_15_up():
    c = card()
    assert (c.currency, c.basis, c.increment_minutes, c.rounding) == ("XOF", "badge", 15, "up")
    assert c.price_per_hour(True) == 2000 and c.price_per_hour(False) == 3000


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"price_per_hour_member": -1}, "billing.error.negative_price"),
        ({"price_per_hour_non_member": -500}, "billing.error.negative_price"),
        ({"increment_minutes": 0}, "billing.error.bad_increment"),
        ({"increment_minutes": -15}, "billing.error.bad_increment"),
        ({"currency": "XXX"}, "billing.error.unknown_currency"),
        ({"rounding": "sideways"}, "billing.error.bad_rounding"),
        ({"basis": "moon"}, "billing.error.bad_basis"),
        ({"minimum_minutes": -1}, "billing.error.negative_minutes"),
        ({"grace_minutes": -3}, "billing.error.negative_minutes"),
        ({"effective_to": D(2025, 12, 31)}, "billing.error.dates_reversed"),
        ({"machine": "bandsaw-1"}, "billing.error.card_scope"),  # both scopes
        ({"machine_type": None}, "billing.error.card_scope"),  # no scope
        ({"price_per_hour_member": 20.5}, "billing.error.price_not_integer"),
    ],
)
def test_bad_cards_are_refused_with_a_clear_reason(kw, key):
    with pytest.raises(RateCardError) as e:
        card(**kw)
    assert e.value.key == key
    # the message is translated, not the bare key
    assert e.value.message("fr") != key and e.value.message("en") != key


def test_price_zero_and_open_end_are_allowed():
    c = card(price_per_hour_member=0, effective_to=None)
    assert c.applies_on(D(2099, 1, 1))


def test_overlap_same_scope_is_refused():
    a = card(effective_to=D(2026, 2, 28))
    b = card(effective_from=D(2026, 2, 28))  # one day in common (effective_to is inclusive)
    with pytest.raises(RateCardError) as e:
        check_no_overlap([a, b])
    assert e.value.key == "billing.error.overlap"
    assert "bandsaw" in e.value.message("en")


def test_open_ended_card_overlaps_any_later_card():
    with pytest.raises(RateCardError):
        check_no_overlap([card(), card(effective_from=D(2027, 1, 1))])


def test_adjacent_cards_and_other_scopes_do_not_overlap():
    cards = [
        card(effective_to=D(2026, 2, 28)),
        card(effective_from=D(2026, 3, 1)),
        card(machine_type=None, machine="bandsaw-1"),  # another scope, same dates
        card(machine_type="lathe"),
    ]
    check_no_overlap(cards)
    assert find_overlap(cards) is None


def test_machine_card_wins_over_type_card():
    t = card(price_per_hour_member=2000)
    m = card(machine_type=None, machine="bandsaw-1", price_per_hour_member=2500)
    assert select_card([t, m], "bandsaw-1", "bandsaw", D(2026, 3, 1)) is m
    assert select_card([m, t], "bandsaw-2", "bandsaw", D(2026, 3, 1)) is t
    assert select_card([m, t], "lathe-1", "lathe", D(2026, 3, 1)) is None


def test_machine_card_out_of_dates_falls_back_to_type_card():
    t = card()
    m = card(machine_type=None, machine="bandsaw-1", effective_from=D(2026, 6, 1))
    assert select_card([t, m], "bandsaw-1", "bandsaw", D(2026, 5, 31)) is t
    assert select_card([t, m], "bandsaw-1", "bandsaw", D(2026, 6, 1)) is m


def test_rate_change_selects_by_date_inclusive_end():
    old = card(price_per_hour_member=2000, effective_to=D(2026, 3, 14))
    new = card(price_per_hour_member=2400, effective_from=D(2026, 3, 15))
    assert select_card([old, new], "b", "bandsaw", D(2026, 3, 14)) is old
    assert select_card([old, new], "b", "bandsaw", D(2026, 3, 15)) is new
    assert select_card([old, new], "b", "bandsaw", D(2025, 12, 31)) is None
