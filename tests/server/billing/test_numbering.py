import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.billing.errors import BillingError
from server.billing.numbering import (
    CREDIT_NOTE,
    INVOICE,
    format_credit_note_number,
    format_invoice_number,
    missing_numbers,
    parse_invoice_number,
    parse_number,
)


def test_format_matches_the_issue_example():
    assert format_invoice_number("DKR", 2026, 123) == "DKR-2026-000123"
    assert format_credit_note_number("DKR", 2026, 7) == "DKR-AV-2026-000007"


def test_parse_round_trip_and_kind():
    assert parse_invoice_number("DKR-2026-000123") == ("DKR", 2026, 123)
    assert parse_number("DKR-AV-2026-000007").kind == CREDIT_NOTE
    assert parse_number("BKO2-2027-999999").kind == INVOICE


@pytest.mark.parametrize(
    "bad", ["", "DKR-2026-123", "dkr-2026-000123", "DKR-26-000123", "DKR-2026-000000", "DKR-XX-2026-000001"]
)
def test_bad_numbers_are_refused(bad):
    with pytest.raises(BillingError):
        parse_number(bad)


@pytest.mark.parametrize("site, year, seq", [("dk", 2026, 1), ("DKR", 2026, 0), ("DKR", 2026, 10**6)])
def test_bad_parts_are_refused(site, year, seq):
    with pytest.raises(BillingError):
        format_invoice_number(site, year, seq)


def test_credit_note_number_is_not_an_invoice_number():
    with pytest.raises(BillingError):
        parse_invoice_number("DKR-AV-2026-000001")


def test_missing_numbers():
    assert missing_numbers([1, 2, 4, 6]) == [3, 5]
    assert missing_numbers([]) == []


@given(
    st.from_regex(r"[A-Z0-9]{2,8}", fullmatch=True),
    st.integers(1000, 9999),
    st.integers(1, 999999),
    st.sampled_from([INVOICE, CREDIT_NOTE]),
)
def test_format_parse_round_trip(site, year, seq, kind):
    from server.billing.numbering import format_number

    d = parse_number(format_number(site, year, seq, kind))
    assert (d.site, d.year, d.seq, d.kind) == (site, year, seq, kind)
