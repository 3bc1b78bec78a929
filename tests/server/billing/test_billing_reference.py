"""The billing run's fast path checked against the slow, obvious one, on a varied workshop
(several cards, card changes mid-month, machine cards, run-time basis, grace, rounding
directions, members, cooperatives, two sites, open sessions, sessions without an artisan,
period boundaries), SQLite and PostgreSQL:

- every line equals :func:`~server.billing.charges.charge_for` of its session with the card
  :func:`~server.billing.rates.select_card` picks (the per-session reference);
- the sessions billed, the grouping per artisan or cooperative, the order of invoices and lines
  and the totals follow the rules written out here;
- the documents a run returns equal the ones read back from the database (ORM path), and
  render the same CSV and PDF.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re

import pytest
from sqlalchemy import insert, select

from server.billing import service
from server.billing.charges import SessionFacts, charge_for, local_clock
from server.billing.documents import DocLine, InvoiceDoc, LazyLines, SiteInfo
from server.billing.export import invoice_pdf, to_csv
from server.billing.models import Invoice, InvoiceLine
from server.billing.periods import parse_period
from server.billing.rates import select_card
from server.billing.tax import invoice_totals
from server.models import Artisan, Machine, Session, Site

UTC = dt.UTC
SEED = 20260326
N_SESSIONS = 400
MACHINES_DKR = ("bandsaw-1", "bandsaw-2", "lathe-1")
RUNS = (  # site, period, issued at, tax
    ("DKR", "2026-02", dt.datetime(2026, 3, 1, 8, tzinfo=UTC), 1800),
    ("DKR", "2026-03", dt.datetime(2026, 4, 1, 8, tzinfo=UTC), 1925),
    ("DLA", "2026-03", dt.datetime(2026, 4, 2, 8, tzinfo=UTC), 0),
    ("DKR", "2026-03", dt.datetime(2026, 4, 3, 8, tzinfo=UTC), 1800),  # nothing left
)


def ms(*args: int) -> int:
    return to_ms(dt.datetime(*args, tzinfo=UTC))


def to_ms(t: dt.datetime) -> int:
    return (t - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(milliseconds=1)


def _workshop(world) -> None:
    db = world.db
    c = service.create_rate_card
    c(db, "DKR", machine_type="bandsaw", price_per_hour_member=2000, price_per_hour_non_member=3000,
      increment_minutes=15, rounding="up", minimum_minutes=15, effective_from=dt.date(2026, 1, 1),
      effective_to=dt.date(2026, 3, 14))
    c(db, "DKR", machine_type="bandsaw", price_per_hour_member=2400, price_per_hour_non_member=3500,
      increment_minutes=10, rounding="nearest", minimum_minutes=10, grace_minutes=3,
      effective_from=dt.date(2026, 3, 15))
    c(db, "DKR", machine_type="lathe", price_per_hour_member=1333, price_per_hour_non_member=1777,
      basis="run", increment_minutes=5, rounding="down", minimum_minutes=0,
      effective_from=dt.date(2026, 1, 1))
    c(db, "DKR", machine="bandsaw-2", price_per_hour_member=999, price_per_hour_non_member=1999,
      increment_minutes=1, rounding="up", minimum_minutes=5, effective_from=dt.date(2026, 2, 10),
      effective_to=dt.date(2026, 3, 20))
    c(db, "DLA", machine_type="lathe", currency="XAF", price_per_hour_member=5000,
      price_per_hour_non_member=7000, effective_from=dt.date(2026, 1, 1))
    rnd = random.Random(SEED)
    artisans = []
    for i in range(14):
        coop = f"Coop {i % 2}" if i % 4 == 0 else None
        artisans.append(world.artisan(f"Artisan é{i}", member=i % 3 != 0, cooperative=coop,
                                      site="DLA" if i >= 12 else "DKR"))
    rows = []
    for k in range(N_SESSIONS):
        a = rnd.choice(artisans)
        machine = rnd.choice(MACHINES_DKR) if a.site == "DKR" else "lathe-dla"
        start = ms(2026, 1, 29) + rnd.randrange(0, 62 * 86_400_000)  # 29 Jan .. 1 Apr
        dur = rnd.choice((rnd.randrange(0, 300_000), rnd.randrange(0, 4 * 3_600_000)))
        open_ = rnd.random() < 0.04
        rows.append(dict(
            id=f"r-{k:04d}-{rnd.randrange(10**6):06d}", site=a.site, machine=machine,
            artisan=a.id if rnd.random() > 0.03 else None, badge_uid=None, start_ms=start,
            end_ms=None if open_ else start + dur, end_reason=None if open_ else "tap_out",
            run_ms=rnd.randrange(0, dur + 1), last_ms=start + dur, open=open_,
        ))
    db.execute(insert(Session), rows)
    db.commit()


def _expected_line(db, sess: Session, tz: str) -> DocLine:
    """The reference: the card select_card picks, then charge_for on the session."""
    site = sess.site
    cards = [service.card_from_row(r) for r in service.list_rate_cards(db, site)]
    clock = local_clock(tz)
    machine = db.get(Machine, sess.machine)
    card = select_card(cards, sess.machine, machine.type, clock.date(sess.start_ms))
    a = db.get(Artisan, sess.artisan)
    line = charge_for(
        SessionFacts(id=sess.id, machine=sess.machine, start=sess.start_ms, end=sess.end_ms,
                     run_ms=sess.run_ms, artisan=sess.artisan),
        card, member=a.member, tz=tz,
    )
    return DocLine(line.session_id, line.machine, line.start_local, line.end_local, line.basis,
                   line.measured_seconds, line.billed_minutes, line.rate_per_hour, line.amount,
                   a.id, a.name)


def _pdf(doc: InvoiceDoc) -> bytes:
    """The PDF without its creation date and file id (the only parts that depend on the clock)."""
    data = re.sub(rb"/CreationDate \(D:[^)]*\)", b"", invoice_pdf(doc))
    return re.sub(rb"/ID \[[^\]]*\]", b"", data)


def test_billing_runs_match_the_per_session_reference_and_the_stored_invoices(world):
    _workshop(world)
    db = world.db
    billed_before: set[str] = set()
    numbers: list[str] = []
    for site_code, period, issued_at, tax_bp in RUNS:
        site = db.get(Site, site_code)
        docs = service.run_billing(db, site_code, period, issued_at, tax_bp=tax_bp)
        lo, hi = (to_ms(t) for t in parse_period(period).utc_bounds(site.tz))
        due = [
            s for s in db.scalars(select(Session).where(Session.site == site_code))
            if not s.open and s.artisan is not None and s.id not in billed_before
            and lo <= s.start_ms < hi
        ]
        # every session due is on exactly one of the invoices issued, nothing else is
        on_docs = [ln.session_id for d in docs for ln in d.lines]
        assert sorted(on_docs) == sorted(s.id for s in due)
        billed_before.update(on_docs)
        if site_code == "DKR" and period == "2026-03" and issued_at.day == 3:
            assert docs == []  # the rerun finds nothing left
            continue
        assert docs, (site_code, period)
        # one invoice per artisan billed alone, one per cooperative, in the run's order
        keys = []
        by_session = {s.id: s for s in due}
        for d in docs:
            members = {db.get(Artisan, ln.artisan_id) for ln in d.lines}
            if d.cooperative is not None:
                assert {a.cooperative for a in members} == {d.cooperative}
                assert d.artisan is None and d.bill_to_name == d.cooperative
                keys.append(("c", d.cooperative))
            else:
                (a,) = members
                assert a.cooperative is None and d.artisan == a.id and d.bill_to_name == a.name
                keys.append(("a", f"{a.id:012d}"))
            # each line is the reference charge of its session, lines in (artisan, start, id)
            expected = [_expected_line(db, by_session[ln.session_id], site.tz) for ln in d.lines]
            assert list(d.lines) == expected
            assert [(ln.artisan_id, ln.start_local, ln.session_id) for ln in d.lines] == sorted(
                (ln.artisan_id, ln.start_local, ln.session_id) for ln in d.lines
            )
            totals = invoice_totals([ln.amount for ln in d.lines], tax_bp)
            assert (d.subtotal, d.tax, d.total, d.tax_bp) == (
                totals.subtotal, totals.tax, totals.total, tax_bp
            )
            assert d.currency == site.currency and d.period == period
            # the document returned is the one stored (read back through the ORM)
            stored = service.invoice_doc(db, db.scalar(select(Invoice).where(Invoice.number == d.number)))
            assert all(ln.line_id is not None for ln in stored.lines)
            without_ids = dataclasses.replace(
                stored, lines=[ln._replace(line_id=None) for ln in stored.lines]
            )
            assert without_ids == d
            assert without_ids.as_dict() == d.as_dict()
            assert _pdf(stored) == _pdf(d)
        assert keys == sorted(keys)
        numbers += [d.number for d in docs]
        assert to_csv(docs) == to_csv(service.period_docs(db, site_code, period)[: len(docs)])
    # gapless numbers per site and year, in issue order
    for site_code in ("DKR", "DLA"):
        seqs = [int(n.rsplit("-", 1)[1]) for n in numbers if n.startswith(site_code + "-")]
        assert seqs == list(range(1, len(seqs) + 1))


def test_credit_note_after_a_run_reads_the_stored_lines(world):
    _workshop(world)
    db = world.db
    (first, *_rest) = service.run_billing(db, "DKR", "2026-03", RUNS[1][2], tax_bp=1800)
    stored = service.invoice_doc(db, service.get_invoice(db, first.number))
    cn = service.issue_credit_note(db, first.number, [stored.lines[0].line_id], reason="erreur",
                                   issued_at=dt.datetime(2026, 4, 5, tzinfo=UTC))
    assert [ln.credited_line_id for ln in cn.lines] == [stored.lines[0].line_id]
    assert cn.lines[0].amount == -first.lines[0].amount
    assert service.invoice_doc(db, service.get_invoice(db, first.number)).status == (
        "credited" if len(first.lines) == 1 else "partially_credited"
    )


def test_the_line_insert_names_every_column_but_the_id():
    assert len(service.LINE_COLUMNS) == len(set(service.LINE_COLUMNS))
    assert set(service.LINE_COLUMNS) == set(InvoiceLine.__table__.columns.keys()) - {"id"}


# --------------------------------------------------------------------------- documents

SITE = SiteInfo(code="DKR", name="CRP Dakar")
LINES = [
    DocLine("s1", "bandsaw-1", "2026-03-10T09:00:00+00:00", "2026-03-10T09:07:00+00:00",
            "badge", 420, 15, 2000, 500, artisan_id=1, artisan_name="Awa"),
    DocLine("s2", "bandsaw-1", "2026-03-11T14:00:00+00:00", "2026-03-11T15:01:00+00:00",
            "run", 3660, 75, 2000, 2500, 2, "Fatou", 7, None),
]


def _doc(lines) -> InvoiceDoc:
    return InvoiceDoc(kind="invoice", number="DKR-2026-000001", site=SITE, artisan=1,
                      cooperative=None, bill_to_name="Awa", period="2026-03",
                      issued_at_local="2026-04-01T08:00:00+00:00", currency="XOF", subtotal=3000,
                      tax_bp=0, tax=0, total=3000, lines=lines)


def test_as_dict_keys_and_values_in_field_order():
    d = _doc(LINES).as_dict()
    assert list(d) == [f.name for f in dataclasses.fields(InvoiceDoc)] + ["bill_to_kind", "artisan_name"]
    assert d["site"] == "DKR" and d["bill_to_kind"] == "artisan" and d["artisan_name"] == "Awa"
    assert d["lines"] == [
        {"session_id": "s1", "machine": "bandsaw-1", "start_local": "2026-03-10T09:00:00+00:00",
         "end_local": "2026-03-10T09:07:00+00:00", "basis": "badge", "measured_seconds": 420,
         "billed_minutes": 15, "rate_per_hour": 2000, "amount": 500, "artisan_id": 1,
         "artisan_name": "Awa", "line_id": None, "credited_line_id": None, "energy_wh": None, "price_per_kwh": 0,
         "energy_amount": 0},
        {"session_id": "s2", "machine": "bandsaw-1", "start_local": "2026-03-11T14:00:00+00:00",
         "end_local": "2026-03-11T15:01:00+00:00", "basis": "run", "measured_seconds": 3660,
         "billed_minutes": 75, "rate_per_hour": 2000, "amount": 2500, "artisan_id": 2,
         "artisan_name": "Fatou", "line_id": 7, "credited_line_id": None, "energy_wh": None, "price_per_kwh": 0,
         "energy_amount": 0},
    ]
    assert list(d["lines"][0]) == list(DocLine._fields)


def test_lazy_lines_are_built_once_on_first_use_and_behave_like_the_list():
    calls = []

    def build():
        calls.append(1)
        return list(LINES)

    lazy = LazyLines(2, build)
    assert len(lazy) == 2 and calls == []  # the length needs no build
    doc = _doc(lazy)
    assert doc == _doc(list(LINES)) and _doc(list(LINES)) == doc
    assert list(lazy) == LINES and lazy[1] == LINES[1] and lazy[:1] == LINES[:1]
    assert doc.as_dict() == _doc(list(LINES)).as_dict()
    assert to_csv([doc]) == to_csv([_doc(list(LINES))])
    assert calls == [1]
    assert lazy != LINES[:1] and repr(lazy) == repr(LINES)


def test_lazy_lines_refuse_a_build_that_disagrees_with_the_length():
    lazy = LazyLines(3, lambda: list(LINES))
    try:
        list(lazy)
    except AssertionError as e:
        assert "2 lines built, 3 announced" in str(e)
    else:  # pragma: no cover - the test fails
        raise AssertionError("no error")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a SQLite-only setting
def test_a_billing_run_gives_the_sqlite_page_cache_back(world, brief_card):
    """The run enlarges SQLite's page cache for itself (memory only) and sets it back on the
    same connection, whether it succeeds or fails."""
    from sqlalchemy.pool import StaticPool

    from server.db import make_engine, make_sessionmaker

    assert world.url.startswith("sqlite")
    a = world.artisan("Awa")
    world.session(a.id, ms(2026, 3, 10, 9, 0), 30)
    engine = make_engine(world.url, poolclass=StaticPool)  # one connection: the run's
    try:
        with make_sessionmaker(engine)() as db:
            conn = db.connection()
            conn.exec_driver_sql("PRAGMA cache_size = -1234")
            db.commit()
            assert len(service.run_billing(db, "DKR", "2026-03", RUNS[1][2], tax_bp=0)) == 1
            assert db.connection().exec_driver_sql("PRAGMA cache_size").scalar() == -1234
            world.session(a.id, ms(2026, 3, 11, 9, 0), 30, machine="lathe-dla")  # no card at DKR
            try:
                service.run_billing(db, "DKR", "2026-03", RUNS[1][2], tax_bp=0)
            except service.BillingError as e:
                assert e.key == "billing.error.no_rate_card"
            else:  # pragma: no cover - the test fails
                raise AssertionError("billed a session without a rate card")
            assert db.connection().exec_driver_sql("PRAGMA cache_size").scalar() == -1234
    finally:
        engine.dispose()
