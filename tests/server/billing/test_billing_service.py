import datetime as dt
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from server.billing import service
from server.billing.charges import EPOCH
from server.billing.errors import BillingError, Conflict, NotFound
from server.billing.models import CreditNote, Invoice, InvoiceCounter, InvoiceLine, Payment
from server.billing.numbering import missing_numbers
from server.models import Artisan



def ms(*args: int) -> int:
    return (dt.datetime(*args, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(milliseconds=1)

ISSUED = dt.datetime(2026, 4, 2, 9, 0, tzinfo=dt.UTC)


def count(db, model) -> int:
    return db.scalar(select(func.count()).select_from(model))


def test_brief_worked_example_end_to_end(world, brief_card):
    a = world.artisan("Awa Diop")
    world.session(a.id, ms(2026, 3, 10, 9, 0), 7)
    world.session(a.id, ms(2026, 3, 11, 14, 0), 61)
    docs = service.run_billing(world.db, "DKR", "2026-03", ISSUED, tax_bp=1800, lang="fr")
    assert len(docs) == 1
    inv = docs[0]
    assert inv.number == "DKR-2026-000001"
    assert inv.artisan == a.id and inv.cooperative is None
    assert [(ln.billed_minutes, ln.amount) for ln in inv.lines] == [(15, 500), (75, 2500)]
    assert (inv.subtotal, inv.tax, inv.total) == (3000, 540, 3540)  # 18 % of 3,000 = 540
    assert inv.lines[0].start_local == "2026-03-10T09:00:00+00:00"
    # what was stored reads back the same
    again = service.invoice_doc(world.db, service.get_invoice(world.db, inv.number))
    assert again.lines == [ln._replace(line_id=r.line_id) for ln, r in zip(inv.lines, again.lines)]
    assert again.total == 3540 and again.status == "issued"


def test_rerun_issues_nothing_and_changes_nothing(world, brief_card):
    a = world.artisan("Awa")
    for d in range(1, 6):
        world.session(a.id, ms(2026, 3, d, 10, 0), 20 + d)
    first = service.run_billing(world.db, "DKR", "2026-03", ISSUED, tax_bp=0)
    assert len(first) == 1 and len(first[0].lines) == 5
    before = (count(world.db, Invoice), count(world.db, InvoiceLine))
    assert service.run_billing(world.db, "DKR", "2026-03", ISSUED, tax_bp=0) == []
    assert (count(world.db, Invoice), count(world.db, InvoiceLine)) == before


def test_session_crossing_the_period_boundary_is_billed_once_in_its_start_month(world, brief_card):
    a = world.artisan("Awa")
    s = world.session(a.id, ms(2026, 3, 31, 23, 30), 75)  # ends 1 April 00:45
    march = service.run_billing(world.db, "DKR", "2026-03", ISSUED)
    april = service.run_billing(world.db, "DKR", "2026-04", ISSUED)
    assert [ln.session_id for d in march for ln in d.lines] == [s.id]
    assert april == []


def test_period_uses_site_local_time(world):
    # Douala is UTC+1: 23:30 UTC on 28 February is 00:30 on 1 March there.
    service.create_rate_card(
        world.db, "DLA", machine_type="lathe", price_per_hour_member=6000,
        price_per_hour_non_member=6000, effective_from=dt.date(2026, 1, 1),
    )
    a = world.artisan("Paul", site="DLA")
    world.session(a.id, ms(2026, 2, 28, 23, 30), 30, machine="lathe-dla", site="DLA")
    assert service.run_billing(world.db, "DLA", "2026-02", ISSUED) == []
    (inv,) = service.run_billing(world.db, "DLA", "2026-03", ISSUED)
    assert inv.currency == "XAF" and inv.number.startswith("DLA-2026-")
    assert inv.lines[0].start_local == "2026-03-01T00:30:00+01:00"
    assert inv.total == 3000


def test_open_sessions_wait_for_the_next_run(world, brief_card):
    a = world.artisan("Awa")
    s = world.session(a.id, ms(2026, 3, 5, 10, 0), 30, open_=True)
    assert service.run_billing(world.db, "DKR", "2026-03", ISSUED) == []
    s.open, s.end_ms = False, s.start_ms + 30 * 60_000
    world.db.commit()
    (inv,) = service.run_billing(world.db, "DKR", "2026-03", ISSUED)
    assert inv.lines[0].session_id == s.id


def test_member_and_non_member_prices(world, brief_card):
    m = world.artisan("Member", member=True)
    n = world.artisan("Visitor", member=False)
    world.session(m.id, ms(2026, 3, 2, 9, 0), 40)
    world.session(n.id, ms(2026, 3, 2, 11, 0), 40)
    docs = {d.artisan: d for d in service.run_billing(world.db, "DKR", "2026-03", ISSUED)}
    assert docs[m.id].total == 1500  # 45 min x 2,000 / 60
    assert docs[n.id].total == 2250  # 45 min x 3,000 / 60


def test_run_time_basis_and_machine_card_override(world, brief_card):
    service.create_rate_card(
        world.db, "DKR", machine="bandsaw-2", basis="run", price_per_hour_member=4000,
        price_per_hour_non_member=4000, increment_minutes=10, minimum_minutes=0,
        effective_from=dt.date(2026, 1, 1),
    )
    a = world.artisan("Awa")
    world.session(a.id, ms(2026, 3, 2, 9, 0), 120, machine="bandsaw-2", run_ms=21 * 60_000)
    (inv,) = service.run_billing(world.db, "DKR", "2026-03", ISSUED)
    ln = inv.lines[0]
    assert (ln.basis, ln.measured_seconds, ln.billed_minutes, ln.amount) == ("run", 1260, 30, 2000)


def test_rate_change_mid_period(world, brief_card):
    service.close_rate_card(world.db, brief_card.id, dt.date(2026, 3, 14))
    service.create_rate_card(
        world.db, "DKR", machine_type="bandsaw", price_per_hour_member=2400,
        price_per_hour_non_member=3600, increment_minutes=15, minimum_minutes=15,
        effective_from=dt.date(2026, 3, 15),
    )
    a = world.artisan("Awa")
    world.session(a.id, ms(2026, 3, 14, 23, 30), 61)  # starts on the 14th: old price
    world.session(a.id, ms(2026, 3, 15, 8, 0), 61)  # new price
    (inv,) = service.run_billing(world.db, "DKR", "2026-03", ISSUED)
    assert [(ln.rate_per_hour, ln.amount) for ln in inv.lines] == [(2000, 2500), (2400, 3000)]


def test_closing_a_card_before_billed_sessions_is_refused(world, brief_card):
    a = world.artisan("Awa")
    world.session(a.id, ms(2026, 3, 20, 9, 0), 30)
    service.run_billing(world.db, "DKR", "2026-03", ISSUED)
    with pytest.raises(Conflict):
        service.close_rate_card(world.db, brief_card.id, dt.date(2026, 3, 10))


def test_cooperative_billing(world, brief_card):
    c1 = world.artisan("Ousmane", cooperative="Coop Bois Médina")
    c2 = world.artisan("Fatou", cooperative="Coop Bois Médina", member=False)
    solo = world.artisan("Ibrahima")
    world.session(c1.id, ms(2026, 3, 3, 9, 0), 7)  # 500
    world.session(c2.id, ms(2026, 3, 3, 10, 0), 61)  # 75 min at 3,000 = 3,750
    world.session(solo.id, ms(2026, 3, 3, 11, 0), 61)  # 2,500
    docs = service.run_billing(world.db, "DKR", "2026-03", ISSUED, tax_bp=1800)
    by = {(d.artisan, d.cooperative): d for d in docs}
    coop = by[(None, "Coop Bois Médina")]
    assert coop.bill_to_name == "Coop Bois Médina"
    assert {(ln.artisan_id, ln.amount) for ln in coop.lines} == {(c1.id, 500), (c2.id, 3750)}
    assert (coop.subtotal, coop.tax, coop.total) == (4250, 765, 5015)
    assert by[(solo.id, None)].total == 2950  # 2,500 + 450
    # numbers: sequential, no gaps
    assert sorted(d.number for d in docs) == ["DKR-2026-000001", "DKR-2026-000002"]


def test_missing_rate_card_refuses_the_whole_run(world, brief_card):
    a = world.artisan("Awa")
    world.session(a.id, ms(2026, 3, 2, 9, 0), 30)
    world.session(a.id, ms(2026, 3, 2, 10, 0), 30, machine="lathe-1")  # no lathe card
    with pytest.raises(BillingError) as e:
        service.run_billing(world.db, "DKR", "2026-03", ISSUED)
    assert e.value.key == "billing.error.no_rate_card" and "lathe-1" in e.value.message("en")
    assert count(world.db, Invoice) == 0 and count(world.db, InvoiceLine) == 0
    # the failed run used no number
    service.create_rate_card(
        world.db, "DKR", machine_type="lathe", price_per_hour_member=1000,
        price_per_hour_non_member=1000, effective_from=dt.date(2026, 1, 1),
    )
    (inv,) = service.run_billing(world.db, "DKR", "2026-03", ISSUED)
    assert inv.number == "DKR-2026-000001"


def test_numbers_continue_across_runs_and_restart_each_year(world, brief_card):
    a = world.artisan("Awa")
    numbers = []
    for month in (1, 2, 3):
        world.session(a.id, ms(2026, month, 5, 9, 0), 30)
        numbers += [d.number for d in service.run_billing(world.db, "DKR", f"2026-{month:02d}", ISSUED)]
    world.session(a.id, ms(2026, 12, 5, 9, 0), 30)
    numbers += [
        d.number
        for d in service.run_billing(
            world.db, "DKR", "2026-12", dt.datetime(2027, 1, 3, tzinfo=dt.UTC)
        )
    ]
    assert numbers == ["DKR-2026-000001", "DKR-2026-000002", "DKR-2026-000003", "DKR-2027-000001"]


def test_bad_period_and_tax_change_nothing(world, brief_card):
    for bad in dict(period="2026-13"), dict(tax_bp=-5):
        kw = {"period": "2026-03", "tax_bp": 0, **bad}
        with pytest.raises(BillingError):
            service.run_billing(world.db, "DKR", kw["period"], ISSUED, tax_bp=kw["tax_bp"])
    assert count(world.db, InvoiceCounter) == 0


# --------------------------------------------------------------------------- immutability


def _issue_one(world) -> Invoice:
    a = world.artisan("Awa")
    world.session(a.id, ms(2026, 3, 2, 9, 0), 61)
    (doc,) = service.run_billing(world.db, "DKR", "2026-03", ISSUED)
    return service.get_invoice(world.db, doc.number)


def test_orm_refuses_to_edit_or_delete_an_issued_invoice(world, brief_card):
    inv = _issue_one(world)
    inv.total = 1
    with pytest.raises(Conflict):
        world.db.commit()
    world.db.rollback()
    line = world.db.scalars(select(InvoiceLine)).first()
    world.db.delete(line)
    with pytest.raises(Conflict):
        world.db.commit()
    world.db.rollback()
    assert service.get_invoice(world.db, inv.number).total == 2500


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE invoices SET total = 1",
        "DELETE FROM invoices",
        "UPDATE invoice_lines SET amount = 0",
        "DELETE FROM invoice_lines",
    ],
)
def test_database_refuses_to_edit_or_delete_an_issued_invoice(world, brief_card, sql):
    inv = _issue_one(world)
    with pytest.raises(DBAPIError) as e:
        with world.sm() as raw, raw.begin():
            raw.execute(text(sql))
    assert "immutable" in str(e.value)
    world.db.expire_all()
    assert service.get_invoice(world.db, inv.number).total == 2500


# --------------------------------------------------------------------------- credit notes


def test_full_credit_note_mirrors_the_invoice(world, brief_card):
    a = world.artisan("Awa")
    world.session(a.id, ms(2026, 3, 2, 9, 0), 61)
    world.session(a.id, ms(2026, 3, 3, 9, 0), 7)
    (inv,) = service.run_billing(world.db, "DKR", "2026-03", ISSUED, tax_bp=1800)
    cn = service.issue_credit_note(world.db, inv.number, reason="machine en panne")
    assert cn.number == "DKR-AV-2026-000001" and cn.credits == inv.number
    assert (cn.subtotal, cn.tax, cn.total) == (-inv.subtotal, -inv.tax, -inv.total)
    assert service.invoice_doc(world.db, service.get_invoice(world.db, inv.number)).status == "credited"
    with pytest.raises(Conflict):
        service.issue_credit_note(world.db, inv.number)
    # the invoice itself did not change; its sessions are never billed again
    assert service.get_invoice(world.db, inv.number).total == inv.total
    assert service.run_billing(world.db, "DKR", "2026-03", ISSUED) == []


def test_partial_credit_note_and_tax_rounding(world, brief_card):
    a = world.artisan("Awa")
    world.session(a.id, ms(2026, 3, 2, 9, 0), 61)  # 2,500
    world.session(a.id, ms(2026, 3, 3, 9, 0), 7)  # 500
    (inv,) = service.run_billing(world.db, "DKR", "2026-03", ISSUED, tax_bp=1850)
    assert inv.tax == 555  # 18.5 % of 3,000
    small = inv.lines[1]
    line_id = service.invoice_doc(world.db, service.get_invoice(world.db, inv.number)).lines[1].line_id
    cn = service.issue_credit_note(world.db, inv.number, line_ids=[line_id])
    assert [ln.amount for ln in cn.lines] == [-small.amount]
    assert (cn.subtotal, cn.tax, cn.total) == (-500, -93, -593)  # 92.5 -> 93 (half away from 0)
    doc = service.invoice_doc(world.db, service.get_invoice(world.db, inv.number))
    assert doc.status == "partially_credited"
    with pytest.raises(Conflict):
        service.issue_credit_note(world.db, inv.number, line_ids=[line_id])
    with pytest.raises(NotFound):
        service.issue_credit_note(world.db, inv.number, line_ids=[999_999])
    assert count(world.db, CreditNote) == 1


# --------------------------------------------------------------------------- payments, balance


def test_payment_in_wrong_currency_is_refused_and_nothing_stored(world):
    a = world.artisan("Awa")
    with pytest.raises(BillingError) as e:
        service.record_payment(world.db, 1000, "EUR", "cash", artisan=a.id)
    assert e.value.key == "billing.error.payment_currency"
    assert "XOF" in e.value.message("fr")
    for bad in (
        dict(amount=0, currency="XOF", method="cash"),
        dict(amount=-5, currency="XOF", method="cash"),
        dict(amount=100, currency="XOF", method="bitcoin"),
        dict(amount=100, currency="XOF", method="wave", reference=" "),
    ):
        with pytest.raises(BillingError):
            service.record_payment(world.db, artisan=a.id, **bad)
    assert count(world.db, Payment) == 0


def test_balance_and_statement(world, brief_card):
    a = world.artisan("Awa")
    world.session(a.id, ms(2026, 3, 2, 9, 0), 61)
    (inv,) = service.run_billing(world.db, "DKR", "2026-03", ISSUED, tax_bp=1800)  # 2,950
    service.record_payment(
        world.db, 2000, "XOF", "orange_money", "OM-123",
        dt.datetime(2026, 4, 5, tzinfo=dt.UTC), artisan=a.id,
    )
    world.session(a.id, ms(2026, 4, 6, 9, 0), 7)  # not billed yet: 500
    b = service.balance(world.db, a.id)
    assert (b["invoiced"], b["paid"], b["balance"], b["unbilled"], b["owed"]) == (
        2950, 2000, 950, 500, 1450,
    )
    st = service.statement(world.db, artisan=a.id)
    assert [(e["kind"], e["amount"], e["balance"]) for e in st["entries"]] == [
        ("invoice", 2950, 2950),
        ("payment", -2000, 950),
    ]
    assert st["currency"] == "XOF"


def test_credit_blocked_prepaid_and_limit(world, brief_card):
    a = world.artisan("Awa")
    service.set_credit_account(world.db, a.id, prepaid=True)
    world.db.refresh(a)
    assert a.credit_blocked is True  # prepaid with nothing paid
    service.record_payment(world.db, 3000, "XOF", "wave", "W-1", artisan=a.id)
    world.db.refresh(a)
    assert a.credit_blocked is False
    world.session(a.id, ms(2026, 3, 2, 9, 0), 61)  # 2,500 used
    assert service.refresh_credit_status(world.db, a.id) is False
    world.session(a.id, ms(2026, 3, 3, 9, 0), 61)  # 5,000 used > 3,000 paid
    assert service.refresh_credit_status(world.db, a.id) is True
    assert world.db.get(Artisan, a.id).credit_blocked is True
    # post-paid with a 10,000 limit: owes 2,000, allowed
    service.set_credit_account(world.db, a.id, prepaid=False, credit_limit=10_000)
    assert world.db.get(Artisan, a.id).credit_blocked is False


# --------------------------------------------------------------------------- properties


def _check_invariants(db) -> None:
    # no session on two invoices (the UNIQUE constraint) and every line sums up
    ids = db.scalars(select(InvoiceLine.session_id)).all()
    assert len(ids) == len(set(ids))
    for inv in db.scalars(select(Invoice)):
        amounts = db.scalars(select(InvoiceLine.amount).where(InvoiceLine.invoice_id == inv.id)).all()
        assert inv.subtotal == sum(amounts)
        assert inv.total == inv.subtotal + inv.tax
    # numbering has no gaps, per site and year
    for site, year in db.execute(select(Invoice.site, Invoice.year).distinct()).all():
        seqs = db.scalars(select(Invoice.seq).where(Invoice.site == site, Invoice.year == year)).all()
        assert missing_numbers(list(seqs)) == [] and len(seqs) == len(set(seqs))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # artisan
            st.integers(0, 3 * 31 * 24 * 60),  # start minute from 1 Feb
            st.integers(0, 300),  # duration in minutes
            st.booleans(),  # still open
        ),
        min_size=1,
        max_size=12,
    ),
    st.lists(st.sampled_from(["2026-02", "2026-03", "2026-04"]), min_size=1, max_size=4),
    st.integers(0, 2500),
)
def test_billing_properties(world, brief_card, sessions, runs, tax_bp):
    if not hasattr(world, "_artisans"):
        world._artisans = [
            world.artisan("A"), world.artisan("B", member=False), world.artisan("C", cooperative="Coop")
        ]
    made = [
        world.session(world._artisans[i].id, ms(2026, 2, 1) + m * 60_000, d, open_=o)
        for i, m, d, o in sessions
    ]
    for period in runs + runs:  # every run twice: the second issues nothing
        service.run_billing(world.db, "DKR", period, ISSUED, tax_bp=tax_bp)
    _check_invariants(world.db)
    billed = set(world.db.scalars(select(InvoiceLine.session_id)))
    months = {f"2026-{m:02d}" for m in range(2, 5)} & set(runs)
    for s in made:
        month = dt.datetime.fromtimestamp(s.start_ms / 1000, dt.UTC).strftime("%Y-%m")
        should = not s.open and month in months
        assert (s.id in billed) == should


def test_two_concurrent_billing_runs_bill_each_session_once(world, brief_card):
    artisans = [world.artisan(f"A{i}") for i in range(6)]
    for i in range(60):
        world.session(artisans[i % 6].id, ms(2026, 3, 1 + i % 28, 8 + i % 10, 0), 10 + i)
    results: list = []
    errors: list = []
    barrier = threading.Barrier(2)

    def run() -> None:
        db = world.sm()
        try:
            barrier.wait()
            results.append(service.run_billing(db, "DKR", "2026-03", ISSUED, tax_bp=1800))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            db.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    issued = sorted(len(r) for r in results)
    assert issued == [0, 6]  # one run issued everything, the other found nothing left
    world.db.expire_all()
    _check_invariants(world.db)
    assert count(world.db, InvoiceLine) == 60


def test_a_session_already_on_an_invoice_at_insert_time_refuses_the_whole_run(world, brief_card, monkeypatch):
    """The UNIQUE session_id is the last guard of "billed once": if a session slips past the
    unbilled filter (a concurrent run committed it in between), the line insert (COPY on
    PostgreSQL, executemany on SQLite) fails, the run issues nothing and says why."""
    a, b = world.artisan("Awa"), world.artisan("Binta")
    world.session(a.id, ms(2026, 3, 2, 9, 0), 30)
    world.session(b.id, ms(2026, 3, 3, 9, 0), 45)
    first = service.run_billing(world.db, "DKR", "2026-03", ISSUED, tax_bp=1800)
    assert len(first) == 2
    invoices_before = count(world.db, Invoice)
    # the second run no longer sees what the first billed
    monkeypatch.setattr(
        service, "_unbilled_filter",
        lambda site, lo, hi: [service.Session.site == site, service.Session.open.is_(False)],
    )
    with pytest.raises(Conflict) as err:
        service.run_billing(world.db, "DKR", "2026-03", ISSUED, tax_bp=1800)
    assert err.value.key == "billing.error.already_billed"
    world.db.rollback()
    assert count(world.db, Invoice) == invoices_before
    assert count(world.db, InvoiceLine) == 2
    counter = world.db.scalars(select(InvoiceCounter)).one()
    assert counter.last_seq == 2  # no number was used up by the refused run
