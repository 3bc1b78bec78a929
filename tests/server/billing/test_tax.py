import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.billing.errors import BillingError
from server.billing.tax import format_rate, invoice_totals, tax_amount


@pytest.mark.parametrize(
    "subtotal, bp, tax",
    [
        (2500, 1800, 450),  # 18 % of 2,500 = 450 exactly
        (2525, 1800, 455),  # 454.5 -> 455 (half-up)
        (2524, 1800, 454),  # 454.32 -> 454
        (2526, 1800, 455),  # 454.68 -> 455
        (1, 1800, 0),  # 0.18 -> 0
        (3, 1800, 1),  # 0.54 -> 1
        (0, 1800, 0),
        (2500, 0, 0),
        (-2525, 1800, -455),  # credit note mirrors the invoice
        (1000, 10000, 1000),
    ],
)
def test_tax_rounding_half_up_hand_computed(subtotal, bp, tax):
    assert tax_amount(subtotal, bp) == tax


def test_totals_on_subtotal_not_per_line():
    # per line: 18 % of 25 = 4.5 -> 5, three lines -> 15; on the subtotal 75 -> 13.5 -> 14
    t = invoice_totals([25, 25, 25], 1800)
    assert (t.subtotal, t.tax, t.total) == (75, 14, 89)


@pytest.mark.parametrize("bp", [-1, 10001, 18.0, True])
def test_bad_tax_rate_is_refused(bp):
    with pytest.raises(BillingError):
        tax_amount(100, bp)


def test_format_rate():
    assert [format_rate(x) for x in (1800, 1850, 1825, 0)] == ["18", "18.5", "18.25", "0"]


@given(st.lists(st.integers(0, 10**9), max_size=50), st.integers(0, 10000))
def test_total_is_sum_of_lines_plus_tax(lines, bp):
    t = invoice_totals(lines, bp)
    assert t.subtotal == sum(lines)
    assert t.total == sum(lines) + t.tax
    assert t.tax >= 0
    # the tax is the exact value rounded half-up: at most half a minor unit away
    assert abs(2 * (t.tax * 10000 - t.subtotal * bp)) <= 10000
