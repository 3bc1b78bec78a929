"""Billing with the database: rate cards, billing runs, credit notes, payments, balances.

Every public function either commits its whole change or raises (a :class:`BillingError`
subclass for bad input) after rolling back, so bad input changes nothing.

Concurrency: a billing run (and a credit note) first locks its numbering counter row
(``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the counter INSERT opens the write
transaction, which serializes writers), then reads the sessions not yet billed. Two runs for
the same site therefore run one after the other; the second finds nothing left to bill.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

from sqlalchemy import exists, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from crp_common.i18n import normalize_lang
from server.models import Artisan, Machine, MachineType, Session, Site

from . import numbering
from .charges import (
    amount_for,
    billed_minutes,
    energy_amount_for,
    local_clock,
    measured_seconds_ms,
    metered_wh,
    to_utc,
)
from .credit import CreditPolicy, available_credit, credit_blocked
from .documents import DocLine, InvoiceDoc, LazyLines, SiteInfo
from .errors import BillingError, Conflict, NotFound
from .models import (
    PAYMENT_METHODS,
    CreditAccount,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    Payment,
    RateCardRow,
    SiteBilling,
)
from .periods import parse_period
from .rates import RateCard, check_no_overlap, select_card
from .tax import check_tax_bp, invoice_totals, tax_amount

RATE_CARD_FIELDS = (
    "machine",
    "machine_type",
    "currency",
    "price_per_hour_member",
    "price_per_hour_non_member",
    "basis",
    "increment_minutes",
    "rounding",
    "minimum_minutes",
    "grace_minutes",
    "effective_from",
    "effective_to",
    "price_per_kwh",
)
STATEMENT_KINDS = ("invoice", "credit_note", "payment")
BILLING_SQLITE_CACHE_KIB = 256 * 1024  # SQLite page cache during a billing run (memory only)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Tx:
    """``with _Tx(db):`` commits on success, rolls back on any error."""

    def __init__(self, db: DbSession):
        self.db = db

    def __enter__(self) -> DbSession:
        return self.db

    def __exit__(self, exc_type, exc, tb) -> bool:  # noqa: ANN001
        if exc_type is None:
            self.db.commit()
        else:
            self.db.rollback()
        return False


# --------------------------------------------------------------------------- site


def get_site(db: DbSession, site: str | None) -> Site:
    if site is None:
        sites = db.scalars(select(Site).order_by(Site.code).limit(2)).all()
        if len(sites) == 1:
            return sites[0]
        raise BillingError("billing.error.site_required")
    row = db.get(Site, site)
    if row is None:
        raise NotFound("billing.error.unknown_site", site=site)
    return row


def site_info(db: DbSession, site: Site) -> SiteInfo:
    extra = db.get(SiteBilling, site.code)
    return SiteInfo(
        code=site.code,
        name=site.name,
        address=extra.address if extra else "",
        phone=extra.phone if extra else "",
        email=extra.email if extra else "",
        tax_id=extra.tax_id if extra else "",
        tz=site.tz,
        currency=site.currency,
    )


def set_site_billing(db: DbSession, site: str, **fields: Any) -> SiteBilling:
    """Address, phone, e-mail, tax id printed on invoices, and the default tax rate."""
    with _Tx(db):
        get_site(db, site)
        if "tax_bp" in fields:
            check_tax_bp(fields["tax_bp"])
        row = db.get(SiteBilling, site) or SiteBilling(
            site=site, address="", phone="", email="", tax_id="", tax_bp=0
        )
        for k, v in fields.items():
            setattr(row, k, v)
        db.add(row)
    return row


def default_tax_bp(db: DbSession, site: str) -> int:
    row = db.get(SiteBilling, site)
    return row.tax_bp if row else 0


# --------------------------------------------------------------------------- rate cards


def card_from_row(row: RateCardRow) -> RateCard:
    return RateCard(id=row.id, **{f: getattr(row, f) for f in RATE_CARD_FIELDS})


def rate_card_dict(row: RateCardRow) -> dict[str, Any]:
    d = {f: getattr(row, f) for f in RATE_CARD_FIELDS}
    d["effective_from"] = row.effective_from.isoformat()
    d["effective_to"] = row.effective_to.isoformat() if row.effective_to else None
    return {"id": row.id, "site": row.site, **d}


def list_rate_cards(db: DbSession, site: str | None = None) -> list[RateCardRow]:
    q = select(RateCardRow).order_by(RateCardRow.id)
    if site is not None:
        q = q.where(RateCardRow.site == site)
    return list(db.scalars(q))


def create_rate_card(db: DbSession, site: str | None, **fields: Any) -> RateCardRow:
    """Validate and store a rate card. Refused (nothing stored): invalid fields, a currency
    other than the site's, an unknown machine or type, dates overlapping another card of the
    same scope."""
    with _Tx(db):
        s = get_site(db, site)
        fields.setdefault("currency", s.currency)
        card = RateCard(**fields)  # validates
        if card.currency != s.currency:
            raise BillingError(
                "billing.error.currency_mismatch", currency=card.currency, site_currency=s.currency
            )
        if card.machine is not None:
            m = db.get(Machine, card.machine)
            if m is None or m.site != s.code:
                raise NotFound("billing.error.unknown_machine", machine=card.machine)
        elif db.get(MachineType, card.machine_type) is None:
            raise NotFound("billing.error.unknown_machine_type", machine_type=card.machine_type)
        existing = [card_from_row(r) for r in list_rate_cards(db, s.code)]
        try:
            check_no_overlap([*existing, card])
        except BillingError as e:
            raise Conflict(e.key, **e.params) from None
        row = RateCardRow(site=s.code, **{f: getattr(card, f) for f in RATE_CARD_FIELDS})
        db.add(row)
        db.flush()
    return row


def close_rate_card(db: DbSession, card_id: int, effective_to: dt.date) -> RateCardRow:
    """End a rate card on ``effective_to`` (inclusive), e.g. before a price change. Refused if
    it would leave an already billed session outside its card's dates."""
    with _Tx(db):
        row = db.get(RateCardRow, card_id)
        if row is None:
            raise NotFound("billing.error.unknown_rate_card", id=card_id)
        card = card_from_row(row)
        closed = RateCard(**{**{f: getattr(card, f) for f in RATE_CARD_FIELDS}, "effective_to": effective_to})
        site = db.get(Site, row.site)
        last = db.scalar(
            select(func.max(InvoiceLine.start_ms)).where(InvoiceLine.rate_card_id == row.id)
        )
        if last is not None:
            last_day = to_utc(last).astimezone(_zone(site.tz)).date()
            if last_day > effective_to:
                raise Conflict("billing.error.card_in_use", id=row.id, day=last_day.isoformat())
        row.effective_to = closed.effective_to
    return row


def _zone(tz: str):  # noqa: ANN202
    from zoneinfo import ZoneInfo

    return ZoneInfo(tz)


# --------------------------------------------------------------------------- numbering


def _dialect_insert(db: DbSession):  # noqa: ANN202
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _lock_counter(db: DbSession, site: str, year: int, kind: str) -> InvoiceCounter:
    """The counter row, locked until the end of the transaction."""
    ins = _dialect_insert(db)(InvoiceCounter).values(site=site, year=year, kind=kind, last_seq=0)
    db.execute(ins.on_conflict_do_nothing())
    q = (
        select(InvoiceCounter)
        .where(InvoiceCounter.site == site, InvoiceCounter.year == year, InvoiceCounter.kind == kind)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.scalars(q).one()


# --------------------------------------------------------------------------- billing run


class _Charge(NamedTuple):
    """The fields of one session's charge in a billing run, in this order: the fields of a
    :class:`~server.billing.charges.ChargeLine` (same values) plus the artisan, the member
    flag, the card and the session's UTC times. :func:`_charges` builds plain tuples in this
    order (several times cheaper than named tuples; :data:`C_AMOUNT` indexes them). The
    first three fields are the order of lines on an invoice; the order is also that of the
    invoice line columns :data:`LINE_COLUMNS` after ``invoice_id`` and ``kind``."""

    artisan_id: int
    start_local: str
    session_id: str
    machine: str
    end_local: str
    basis: str
    measured_seconds: int
    billed_minutes: int
    rate_per_hour: int
    amount: int
    member: bool
    rate_card_id: int | None
    start_ms: int
    end_ms: int
    energy_wh: int | None  # whole Wh metered; None: the machine has no meter
    price_per_kwh: int
    energy_amount: int  # part of ``amount``


C_AMOUNT = _Charge._fields.index("amount")


@dataclass
class _Group:
    artisan: int | None
    cooperative: str | None
    name: str
    lines: list[tuple]  # _Charge field order


def unbilled_sessions_query(site: str, lo_ms: int | None = None, hi_ms: int | None = None):
    q = select(Session).where(*_unbilled_filter(site, lo_ms, hi_ms))
    return q.order_by(Session.start_ms, Session.id)


def _unbilled_filter(site: str, lo_ms: int | None, hi_ms: int | None) -> list[Any]:
    where = [
        Session.site == site,
        Session.open.is_(False),
        Session.end_ms.is_not(None),
        Session.artisan.is_not(None),
        ~exists().where(InvoiceLine.session_id == Session.id),
    ]
    if lo_ms is not None:
        where.append(Session.start_ms >= lo_ms)
    if hi_ms is not None:
        where.append(Session.start_ms < hi_ms)
    return where


def unbilled_session_rows_query(
    site: str, lo_ms: int | None = None, hi_ms: int | None = None
):
    """The sessions of :func:`unbilled_sessions_query` as plain rows ``(id, machine, start_ms,
    end_ms, run_ms, artisan, energy_wh)``, without loading ORM objects."""
    return (
        select(
            Session.id,
            Session.machine,
            Session.start_ms,
            Session.end_ms,
            Session.run_ms,
            Session.artisan,
            Session.energy_wh,
        )
        .where(*_unbilled_filter(site, lo_ms, hi_ms))
        .order_by(Session.start_ms, Session.id)
    )


_UNSEEN = object()


def _charges(
    db: DbSession, site: Site, sessions: Iterable[tuple], strict: bool
) -> tuple[dict[int, list[tuple]], dict[int, Artisan], list[RateCard]]:
    """The charge of each session (rows of :func:`unbilled_session_rows_query`, times in UTC
    epoch ms) as tuples in :class:`_Charge` field order, per artisan (each artisan's in session
    order; an artisan without a charge has an empty list); the artisans; the rate cards used,
    in the order of their first use. ``strict``: a session of an unknown artisan or without a
    rate card is an error; otherwise it is skipped.

    Same results as :func:`~server.billing.charges.charge_for` per session, with the rate card
    picked once per (machine, local day) and the price once per (card, member, seconds)."""
    machine_types = dict(db.execute(select(Machine.id, Machine.type)).all())
    cards = [card_from_row(r) for r in list_rate_cards(db, site.code)]
    sessions = list(sessions)
    artisan_ids = {row[5] for row in sessions}
    artisans = {
        a.id: a for a in db.scalars(select(Artisan).where(Artisan.id.in_(artisan_ids)))
    } if artisan_ids else {}
    lines_of: dict[int, list[tuple]] = {i: [] for i in artisans}
    # artisan -> (member flag, append to the artisan's charges): one look-up per session
    of_artisan = {i: (a.member, lines_of[i].append) for i, a in artisans.items()}
    clock = local_clock(site.tz)
    span = clock.span
    # (machine, local day) -> (card, its basis) or None; (card, member, seconds) -> price
    picked: dict[tuple[str, int], tuple[RateCard, str] | None] = {}
    used: dict[int, RateCard] = {}  # id(card) -> card, in the order of first use
    priced: dict[tuple[int, bool, int], tuple] = {}
    artisan_of, card_of, price_of = of_artisan.get, picked.get, priced.get
    for sid, machine, start, end, run_ms, artisan_id, energy in sessions:
        artisan = artisan_of(artisan_id)
        if artisan is None:
            if strict:
                raise BillingError("billing.error.unknown_artisan", artisan=artisan_id)
            continue
        member, add = artisan
        local_day, start_local, end_local = span(start, end)
        day_key = (machine, local_day)
        picked_card = card_of(day_key, _UNSEEN)
        if picked_card is _UNSEEN:
            card = select_card(cards, machine, machine_types.get(machine), clock.date(start))
            picked_card = picked[day_key] = None if card is None else (card, card.basis)
            if card is not None:
                used.setdefault(id(card), card)
        if picked_card is None:
            if strict:
                raise BillingError(
                    "billing.error.no_rate_card",
                    machine=machine,
                    day=clock.date(start).isoformat(),
                )
            continue
        card, basis = picked_card
        secs = measured_seconds_ms(start, end, run_ms, basis)
        price_key = (id(card), member, secs)
        price = price_of(price_key)
        if price is None:
            minutes = billed_minutes(secs, card)
            rate = card.price_per_hour(member)
            price = priced[price_key] = (minutes, rate, amount_for(minutes, rate), card.id)
        minutes, rate, amount, card_id = price
        per_kwh = card.price_per_kwh
        if energy is None:  # no meter: no energy billed
            wh, energy_amount = None, 0
        else:
            wh = metered_wh(energy)
            energy_amount = energy_amount_for(wh, per_kwh)
        # the _Charge fields, in order
        add((artisan_id, start_local, str(sid), machine, end_local, basis, secs, minutes, rate,
             amount + energy_amount, member, card_id, start, end, wh, per_kwh, energy_amount))
    return lines_of, artisans, list(used.values())


def run_billing(
    db: DbSession,
    site: str | None,
    period: str,
    issued_at: dt.datetime | None = None,
    tax_bp: int | None = None,
    lang: str | None = None,
) -> list[InvoiceDoc]:
    """Issue the invoices of ``period`` (``YYYY-MM``): every closed session that started in the
    period (site local time) and is on no invoice yet, one invoice per artisan or per
    cooperative. Running it again issues nothing. Returns the invoices issued."""
    p = parse_period(period)
    issued_at = issued_at or _now()
    if issued_at.tzinfo is None:
        raise BillingError("billing.error.naive_time")
    with _Tx(db):
        s = get_site(db, site)
        tax_bp = default_tax_bp(db, s.code) if tax_bp is None else tax_bp
        check_tax_bp(tax_bp)
        lang = normalize_lang(lang or s.locale)
        year = issued_at.astimezone(_zone(s.tz)).year
        counter = _lock_counter(db, s.code, year, numbering.INVOICE)
        lo, hi = p.utc_bounds(s.tz)
        with _sqlite_page_cache(db, BILLING_SQLITE_CACHE_KIB):
            sessions = _fetch_plain(db, unbilled_session_rows_query(s.code, _ms(lo), _ms(hi)))
            lines_of, artisans, cards = _charges(db, s, sessions, strict=True)
            site_currency = s.currency
            for card in cards:  # in the order of first use: the first charge in the wrong currency
                if card.currency != site_currency:
                    raise BillingError(
                        "billing.error.currency_mismatch",
                        currency=card.currency,
                        site_currency=site_currency,
                    )
            groups = _group(lines_of, artisans)
            docs = _issue(db, s, p, counter, year, groups, artisans, issued_at, tax_bp, lang)
    billed = {i for i, lines in lines_of.items() if lines}
    for artisan_id in db.scalars(select(CreditAccount.artisan_id)):
        if artisan_id in billed:
            refresh_credit_status(db, artisan_id)
    return docs


@contextmanager
def _sqlite_page_cache(db: DbSession, kib: int) -> Iterator[None]:
    """On SQLite, let this connection's page cache grow to ``kib`` KiB for the block, then set
    it back (before the commit: same connection). Memory only: durability is unchanged (no
    change to journaling or syncing). With a million lines the session-id index no longer fits
    the default 2 MB cache and the run slows down more than linearly without this."""
    conn = db.connection()
    if conn.dialect.name != "sqlite":
        yield
        return
    before = int(conn.exec_driver_sql("PRAGMA cache_size").scalar())
    conn.exec_driver_sql(f"PRAGMA cache_size = {-int(kib)}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {before}")


def _fetch_plain(db: DbSession, query) -> list[tuple]:  # noqa: ANN001
    """All rows of ``query`` as the driver's plain tuples, without building a SQLAlchemy
    ``Row`` per row: 100k ``Row`` objects cost time to build and, being tracked by the garbage
    collector, trigger full collections. Only for queries whose columns need no result
    processing (strings and integers)."""
    result = db.connection().execute(query)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _ms(t: dt.datetime) -> int:
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


def _group(lines_of: dict[int, list[tuple]], artisans: dict[int, Artisan]) -> list[_Group]:
    """One group per artisan billed on their own and per cooperative, in invoice order."""
    groups: dict[tuple[str, str], _Group] = {}
    for artisan_id, lines in lines_of.items():
        if not lines:
            continue
        a = artisans[artisan_id]
        if a.cooperative:
            key = ("c", a.cooperative)
            g = groups.setdefault(key, _Group(None, a.cooperative, a.cooperative, []))
        else:
            key = ("a", f"{a.id:012d}")
            g = groups.setdefault(key, _Group(a.id, None, a.name, []))
        g.lines.extend(lines)
    return [groups[k] for k in sorted(groups)]


def _issue(db, s, p, counter, year, groups, artisans, issued_at, tax_bp, lang) -> list[InvoiceDoc]:  # noqa: ANN001
    info = site_info(db, s)
    issued_local = issued_at.astimezone(_zone(s.tz)).isoformat(timespec="seconds")
    names = {i: a.name for i, a in artisans.items()}
    invoices: list[tuple[Invoice, _Group]] = []
    ids = _next_invoice_ids(db, len(groups))
    for g in groups:
        g.lines.sort()  # by artisan, local start, session (the first fields of _Charge)
        totals = invoice_totals([c[C_AMOUNT] for c in g.lines], tax_bp)
        counter.last_seq += 1
        inv = Invoice(
            id=next(ids, None),
            number=numbering.format_invoice_number(s.code, year, counter.last_seq),
            site=s.code,
            year=year,
            seq=counter.last_seq,
            artisan_id=g.artisan,
            cooperative=g.cooperative,
            bill_to_name=g.name,
            period=str(p),
            currency=s.currency,
            subtotal=totals.subtotal,
            tax_bp=tax_bp,
            tax=totals.tax,
            total=totals.total,
            issued_at=issued_at,
            lang=lang,
        )
        db.add(inv)
        invoices.append((inv, g))
    db.flush()
    if invoices:  # Conflict if a concurrent run billed one of these sessions first
        _insert_lines(db, [(inv.id, g.lines) for inv, g in invoices])
    return [
        InvoiceDoc(
            kind=numbering.INVOICE,
            number=inv.number,
            site=info,
            artisan=inv.artisan_id,
            cooperative=inv.cooperative,
            bill_to_name=inv.bill_to_name,
            period=inv.period,
            issued_at_local=issued_local,
            currency=inv.currency,
            subtotal=inv.subtotal,
            tax_bp=inv.tax_bp,
            tax=inv.tax,
            total=inv.total,
            lang=lang,
            lines=LazyLines(len(g.lines), partial(_doc_lines, g.lines, names)),
        )
        for inv, g in invoices
    ]


def _next_invoice_ids(db: DbSession, n: int) -> Iterator[int]:
    """On PostgreSQL, ``n`` invoice ids drawn from the table's sequence in one query: with
    their ids known, the invoices go in as one pipelined executemany of a short statement
    instead of one INSERT ... RETURNING of ``n`` rows, whose thousands of parameters psycopg
    takes tens of milliseconds to parse. Elsewhere nothing: the database numbers them on
    insert. Ids are not invoice numbers: those come from the gap-free counter."""
    conn = db.connection()
    if conn.dialect.name != "postgresql" or n == 0:
        return iter(())
    rows = conn.execute(
        text("SELECT nextval(pg_get_serial_sequence('invoices', 'id')) FROM generate_series(1, :n)"),
        {"n": n},
    )
    return iter(sorted(int(r[0]) for r in rows))  # ids in the order of the numbers


def _doc_lines(charges: list[tuple], names: dict[int, str]) -> list[DocLine]:
    """The document lines of an invoice's charges (tuples in :class:`_Charge` order)."""
    new_line = tuple.__new__  # DocLine is a named tuple: build it from its values directly
    return [
        new_line(DocLine, (sid, machine, start_local, end_local, basis, secs, minutes, rate,
                           amount, aid, names[aid], None, None, wh, per_kwh, energy_amount))
        for (aid, start_local, sid, machine, end_local, basis, secs, minutes, rate, amount,
             _member, _card_id, _start_ms, _end_ms, wh, per_kwh, energy_amount) in charges
    ]


LINE_COLUMNS = ("invoice_id", "kind", *_Charge._fields)  # every column but the id


def _insert_lines(db: DbSession, invoices: list[tuple[int, list[tuple]]]) -> None:
    """INSERT the charge lines (tuples in :class:`_Charge` order) of each ``(invoice id,
    lines)``, with kind ``charge``, in invoice order, then line order: the lines' ids keep the
    order of an invoice.

    - PostgreSQL (psycopg): one ``COPY ... FROM STDIN`` in the run's transaction, faster than
      a pipelined executemany; the database checks the same constraints.
    - SQLite (and other positional drivers): one executemany per invoice of a statement that
      has the invoice id and kind as constants, so the charge tuples go to the driver as they are.
    - Any other driver: one executemany with named parameters.

    A line whose session is already on an invoice (a concurrent run got there first) raises
    :class:`Conflict`: the caller's transaction rolls back with nothing issued. Any other
    integrity error (a line without its invoice or rate card) is a bug and is raised as is.
    Lines are only ever inserted: the ORM guard and the database triggers still refuse any
    UPDATE or DELETE of them. On PostgreSQL the lines' references are checked once per
    statement (migration 0008), on SQLite by its foreign keys."""
    conn = db.connection()
    dialect = conn.dialect
    try:
        placeholder = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
        if dialect.driver == "psycopg":
            _copy_lines(conn, invoices)
        elif placeholder is not None:
            _executemany_lines(conn, invoices, placeholder)
        else:
            compiled = insert(InvoiceLine.__table__).compile(
                dialect=dialect, column_keys=list(LINE_COLUMNS)
            )
            conn.exec_driver_sql(
                compiled.string,
                [dict(zip(LINE_COLUMNS, (iid, "charge", *c)))
                 for iid, lines in invoices for c in lines],
            )
    except (IntegrityError, dialect.loaded_dbapi.IntegrityError) as e:
        if _is_unique_violation(e):
            raise Conflict("billing.error.already_billed") from None
        raise


def _is_unique_violation(e: Exception) -> bool:
    """A UNIQUE constraint refused the row (SQLSTATE 23505; SQLite's SQLITE_CONSTRAINT_UNIQUE),
    as opposed to another integrity error (a missing reference), which is a bug, not a race."""
    err = getattr(e, "orig", None) or e
    return getattr(err, "sqlstate", None) == "23505" or \
        getattr(err, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_UNIQUE"


def _line_table_and_columns(conn) -> tuple[str, str]:  # noqa: ANN001
    prep = conn.dialect.identifier_preparer
    return (prep.format_table(InvoiceLine.__table__),
            ", ".join(prep.quote(c) for c in LINE_COLUMNS))


def _copy_lines(conn, invoices: list[tuple[int, list[tuple]]]) -> None:  # noqa: ANN001
    table, columns = _line_table_and_columns(conn)
    raw = conn.connection.driver_connection  # the psycopg connection, in the run's transaction
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        write = copy.write_row
        for invoice_id, lines in invoices:
            head = (int(invoice_id), "charge")
            for c in lines:
                write(head + c)


def _executemany_lines(conn, invoices: list[tuple[int, list[tuple]]], placeholder: str) -> None:  # noqa: ANN001
    table, columns = _line_table_and_columns(conn)
    head = f"INSERT INTO {table} ({columns}) VALUES ("
    tail = ", 'charge', " + ", ".join([placeholder] * len(_Charge._fields)) + ")"
    for invoice_id, lines in invoices:
        # the id is an integer the database just gave the invoice (int() makes sure of it)
        conn.exec_driver_sql(head + str(int(invoice_id)) + tail, lines)


# --------------------------------------------------------------------------- reading invoices


def _doc_line(row: InvoiceLine, names: dict[int, str], amount: int | None = None) -> DocLine:
    return DocLine(
        session_id=row.session_id,
        machine=row.machine,
        start_local=row.start_local,
        end_local=row.end_local,
        basis=row.basis,
        measured_seconds=row.measured_seconds,
        billed_minutes=row.billed_minutes,
        rate_per_hour=row.rate_per_hour,
        amount=row.amount if amount is None else amount,
        artisan_id=row.artisan_id,
        artisan_name=names.get(row.artisan_id, ""),
        line_id=row.id,
        credited_line_id=row.id if amount is not None else None,
        energy_wh=row.energy_wh,
        price_per_kwh=row.price_per_kwh,
        # a credit-note line cancels the whole line: its energy part too
        energy_amount=row.energy_amount if amount is None else -row.energy_amount,
    )


def _names(db: DbSession, ids: Iterable[int]) -> dict[int, str]:
    ids = set(ids)
    if not ids:
        return {}
    return dict(db.execute(select(Artisan.id, Artisan.name).where(Artisan.id.in_(ids))).all())


def invoice_status(db: DbSession, inv: Invoice) -> str:
    """``issued``, ``partially_credited`` or ``credited`` (derived: invoices never change)."""
    n_lines = db.scalar(select(func.count()).where(InvoiceLine.invoice_id == inv.id)) or 0
    n_credited = db.scalar(
        select(func.count())
        .select_from(CreditNoteLine)
        .join(InvoiceLine, InvoiceLine.id == CreditNoteLine.credited_line_id)
        .where(InvoiceLine.invoice_id == inv.id)
    ) or 0
    if n_credited == 0:
        return "issued"
    return "credited" if n_credited >= n_lines else "partially_credited"


def get_invoice(db: DbSession, number: str) -> Invoice:
    inv = db.scalar(select(Invoice).where(Invoice.number == number))
    if inv is None:
        raise NotFound("billing.error.unknown_invoice", number=number)
    return inv


def invoice_doc(db: DbSession, inv: Invoice) -> InvoiceDoc:
    site = db.get(Site, inv.site)
    lines = db.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id == inv.id).order_by(InvoiceLine.id)
    ).all()
    names = _names(db, (ln.artisan_id for ln in lines))
    return InvoiceDoc(
        kind=numbering.INVOICE,
        number=inv.number,
        site=site_info(db, site),
        artisan=inv.artisan_id,
        cooperative=inv.cooperative,
        bill_to_name=inv.bill_to_name,
        period=inv.period,
        issued_at_local=inv.issued_at.astimezone(_zone(site.tz)).isoformat(timespec="seconds"),
        currency=inv.currency,
        subtotal=inv.subtotal,
        tax_bp=inv.tax_bp,
        tax=inv.tax,
        total=inv.total,
        lang=inv.lang,
        status=invoice_status(db, inv),
        lines=[_doc_line(ln, names) for ln in lines],
    )


def credit_note_doc(db: DbSession, cn: CreditNote) -> InvoiceDoc:
    inv = db.get(Invoice, cn.invoice_id)
    site = db.get(Site, cn.site)
    pairs = db.execute(
        select(CreditNoteLine, InvoiceLine)
        .join(InvoiceLine, InvoiceLine.id == CreditNoteLine.credited_line_id)
        .where(CreditNoteLine.credit_note_id == cn.id)
        .order_by(CreditNoteLine.id)
    ).all()
    names = _names(db, (il.artisan_id for _, il in pairs))
    return InvoiceDoc(
        kind=numbering.CREDIT_NOTE,
        number=cn.number,
        site=site_info(db, site),
        artisan=inv.artisan_id,
        cooperative=inv.cooperative,
        bill_to_name=inv.bill_to_name,
        period=inv.period,
        issued_at_local=cn.issued_at.astimezone(_zone(site.tz)).isoformat(timespec="seconds"),
        currency=cn.currency,
        subtotal=cn.subtotal,
        tax_bp=cn.tax_bp,
        tax=cn.tax,
        total=cn.total,
        lang=cn.lang,
        credits=inv.number,
        reason=cn.reason,
        lines=[_doc_line(il, names, amount=cl.amount) for cl, il in pairs],
    )


def list_invoices(
    db: DbSession,
    site: str | None = None,
    period: str | None = None,
    artisan: int | None = None,
) -> list[Invoice]:
    q = select(Invoice).order_by(Invoice.site, Invoice.year, Invoice.seq)
    if site:
        q = q.where(Invoice.site == site)
    if period:
        q = q.where(Invoice.period == str(parse_period(period)))
    if artisan is not None:
        q = q.where(Invoice.artisan_id == artisan)
    return list(db.scalars(q))


def period_docs(db: DbSession, site: str | None, period: str) -> list[InvoiceDoc]:
    """The invoices of a period and the credit notes on them (for exports)."""
    p = parse_period(period)
    s = get_site(db, site)
    invs = list_invoices(db, s.code, str(p))
    docs = [invoice_doc(db, i) for i in invs]
    if invs:
        cns = db.scalars(
            select(CreditNote)
            .where(CreditNote.invoice_id.in_([i.id for i in invs]))
            .order_by(CreditNote.year, CreditNote.seq)
        ).all()
        docs.extend(credit_note_doc(db, c) for c in cns)
    return docs


# --------------------------------------------------------------------------- credit notes


def issue_credit_note(
    db: DbSession,
    number: str,
    line_ids: Sequence[int] | None = None,
    reason: str = "",
    issued_at: dt.datetime | None = None,
    lang: str | None = None,
) -> InvoiceDoc:
    """Credit some lines of an invoice (all not yet credited lines when ``line_ids`` is None).
    The credit note has its own gapless sequence (``<SITE>-AV-<YYYY>-<NNNNNN>``); its tax is
    recomputed on the credited subtotal with the invoice's rate."""
    issued_at = issued_at or _now()
    with _Tx(db):
        inv = get_invoice(db, number)
        site = db.get(Site, inv.site)
        year = issued_at.astimezone(_zone(site.tz)).year
        counter = _lock_counter(db, site.code, year, numbering.CREDIT_NOTE)
        lines = {
            ln.id: ln
            for ln in db.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == inv.id))
        }
        credited = set(
            db.scalars(
                select(CreditNoteLine.credited_line_id).where(
                    CreditNoteLine.credited_line_id.in_(list(lines) or [-1])
                )
            )
        )
        if line_ids is None:
            chosen = [i for i in sorted(lines) if i not in credited]
        else:
            chosen = list(dict.fromkeys(line_ids))
            for i in chosen:
                if i not in lines:
                    raise NotFound("billing.error.unknown_line", line=i, number=number)
                if i in credited:
                    raise Conflict("billing.error.line_already_credited", line=i)
        if not chosen:
            raise Conflict("billing.error.nothing_to_credit", number=number)
        subtotal = -sum(lines[i].amount for i in chosen)
        tax = tax_amount(subtotal, inv.tax_bp)
        counter.last_seq += 1
        cn = CreditNote(
            number=numbering.format_credit_note_number(site.code, year, counter.last_seq),
            site=site.code,
            year=year,
            seq=counter.last_seq,
            invoice_id=inv.id,
            reason=reason or "",
            currency=inv.currency,
            subtotal=subtotal,
            tax_bp=inv.tax_bp,
            tax=tax,
            total=subtotal + tax,
            issued_at=issued_at,
            lang=normalize_lang(lang or inv.lang),
        )
        db.add(cn)
        db.flush()
        db.execute(
            insert(CreditNoteLine),
            [dict(credit_note_id=cn.id, credited_line_id=i, amount=-lines[i].amount) for i in chosen],
        )
        affected = {inv.artisan_id} if inv.artisan_id else set()
    for a in affected:
        refresh_credit_status(db, a)
    return credit_note_doc(db, cn)


def get_credit_note(db: DbSession, number: str) -> CreditNote:
    cn = db.scalar(select(CreditNote).where(CreditNote.number == number))
    if cn is None:
        raise NotFound("billing.error.unknown_invoice", number=number)
    return cn


# --------------------------------------------------------------------------- payments


def record_payment(
    db: DbSession,
    amount: int,
    currency: str,
    method: str,
    reference: str = "",
    received_at: dt.datetime | None = None,
    artisan: int | None = None,
    cooperative: str | None = None,
    site: str | None = None,
) -> Payment:
    """Record a payment by an artisan (or a cooperative). Refused: amount not a positive
    integer, currency other than the site's, unknown method, missing reference for mobile
    money."""
    with _Tx(db):
        if (artisan is None) == (cooperative is None):
            raise BillingError("billing.error.payer_required")
        if artisan is not None:
            a = db.get(Artisan, artisan)
            if a is None:
                raise NotFound("billing.error.unknown_artisan", artisan=artisan)
            site = a.site
        s = get_site(db, site)
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise BillingError("billing.error.bad_amount", value=amount)
        if currency != s.currency:
            raise BillingError(
                "billing.error.payment_currency", currency=currency, site_currency=s.currency
            )
        if method not in PAYMENT_METHODS:
            raise BillingError(
                "billing.error.bad_method", method=method, known=", ".join(PAYMENT_METHODS)
            )
        if method != "cash" and not (reference or "").strip():
            raise BillingError("billing.error.reference_required", method=method)
        received_at = received_at or _now()
        if received_at.tzinfo is None:
            raise BillingError("billing.error.naive_time")
        row = Payment(
            site=s.code,
            artisan_id=artisan,
            cooperative=cooperative,
            amount=amount,
            currency=currency,
            method=method,
            reference=(reference or "").strip(),
            received_at=received_at,
        )
        db.add(row)
        db.flush()
    if artisan is not None:
        refresh_credit_status(db, artisan)
    return row


def payment_dict(p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "site": p.site,
        "artisan": p.artisan_id,
        "cooperative": p.cooperative,
        "amount": p.amount,
        "currency": p.currency,
        "method": p.method,
        "reference": p.reference,
        "received_at": p.received_at.isoformat(),
    }


def list_payments(
    db: DbSession, artisan: int | None = None, site: str | None = None
) -> list[Payment]:
    q = select(Payment).order_by(Payment.received_at, Payment.id)
    if artisan is not None:
        q = q.where(Payment.artisan_id == artisan)
    if site is not None:
        q = q.where(Payment.site == site)
    return list(db.scalars(q))


# --------------------------------------------------------------------------- balances


def _payer_filter(model, artisan: int | None, cooperative: str | None):  # noqa: ANN001, ANN202
    if cooperative is not None:
        return model.cooperative == cooperative
    return model.artisan_id == artisan


def statement(
    db: DbSession, artisan: int | None = None, cooperative: str | None = None
) -> dict[str, Any]:
    """Invoices, credit notes and payments in date order with the running balance
    (positive = owed by the artisan). For an artisan: their own invoices, not the ones of the
    cooperative they bill to."""
    if artisan is not None:
        a = db.get(Artisan, artisan)
        if a is None:
            raise NotFound("billing.error.unknown_artisan", artisan=artisan)
        currency = db.get(Site, a.site).currency
    else:
        currency = None
    entries: list[dict[str, Any]] = []
    for inv in db.scalars(select(Invoice).where(_payer_filter(Invoice, artisan, cooperative))):
        currency = currency or inv.currency
        entries.append(
            {"date": inv.issued_at, "kind": "invoice", "ref": inv.number, "amount": inv.total}
        )
    for cn, inv in db.execute(
        select(CreditNote, Invoice)
        .join(Invoice, Invoice.id == CreditNote.invoice_id)
        .where(_payer_filter(Invoice, artisan, cooperative))
    ).all():
        entries.append(
            {"date": cn.issued_at, "kind": "credit_note", "ref": cn.number, "amount": cn.total}
        )
    for p in db.scalars(select(Payment).where(_payer_filter(Payment, artisan, cooperative))):
        currency = currency or p.currency
        entries.append(
            {
                "date": p.received_at,
                "kind": "payment",
                "ref": f"{p.method}:{p.reference}" if p.reference else p.method,
                "amount": -p.amount,
            }
        )
    entries.sort(key=lambda e: (e["date"], STATEMENT_KINDS.index(e["kind"]), e["ref"]))
    running = 0
    for e in entries:
        running += e["amount"]
        e["balance"] = running
        e["date"] = e["date"].isoformat()
    invoiced = sum(e["amount"] for e in entries if e["kind"] == "invoice")
    credited = -sum(e["amount"] for e in entries if e["kind"] == "credit_note")
    paid = -sum(e["amount"] for e in entries if e["kind"] == "payment")
    return {
        "artisan": artisan,
        "cooperative": cooperative,
        "currency": currency,
        "invoiced": invoiced,
        "credited": credited,
        "paid": paid,
        "balance": invoiced - credited - paid,
        "entries": entries,
    }


def unbilled_amount(db: DbSession, artisan: int) -> int:
    """What the artisan's closed, not yet invoiced sessions will cost (sessions on machines
    without a rate card count 0)."""
    a = db.get(Artisan, artisan)
    site = db.get(Site, a.site)
    sessions = db.execute(
        unbilled_session_rows_query(site.code).where(Session.artisan == artisan)
    ).all()
    lines_of, _artisans, _cards = _charges(db, site, sessions, strict=False)
    return sum(c[C_AMOUNT] for lines in lines_of.values() for c in lines)


def balance(db: DbSession, artisan: int) -> dict[str, Any]:
    st = statement(db, artisan=artisan)
    unbilled = unbilled_amount(db, artisan)
    acct = db.get(CreditAccount, artisan)
    policy = CreditPolicy(acct.prepaid, acct.credit_limit) if acct else CreditPolicy()
    owed = st["balance"] + unbilled
    return {
        "artisan": artisan,
        "currency": st["currency"],
        "invoiced": st["invoiced"],
        "credited": st["credited"],
        "paid": st["paid"],
        "balance": st["balance"],
        "unbilled": unbilled,
        "owed": owed,
        "prepaid": policy.prepaid,
        "credit_limit": policy.limit,
        "available_credit": available_credit(owed, policy),
        "credit_blocked": credit_blocked(owed, policy),
    }


def set_credit_account(
    db: DbSession, artisan: int, prepaid: bool = False, credit_limit: int | None = None
) -> CreditAccount:
    with _Tx(db):
        if db.get(Artisan, artisan) is None:
            raise NotFound("billing.error.unknown_artisan", artisan=artisan)
        if credit_limit is not None and (
            not isinstance(credit_limit, int) or isinstance(credit_limit, bool) or credit_limit < 0
        ):
            raise BillingError("billing.error.bad_amount", value=credit_limit)
        row = db.get(CreditAccount, artisan) or CreditAccount(artisan_id=artisan)
        row.prepaid, row.credit_limit = prepaid, credit_limit
        db.add(row)
    refresh_credit_status(db, artisan)
    return row


def refresh_credit_status(db: DbSession, artisan_id: int) -> bool:
    """Recompute and store ``Artisan.credit_blocked`` (read by the gateway snapshot). Call it
    after anything that changes what an artisan owes: a session closing, a billing run, a
    credit note, a payment, a change of credit account. It commits: call it after the caller's
    own transaction is committed. Returns the new flag."""
    with _Tx(db):
        a = db.get(Artisan, artisan_id)
        if a is None:
            raise NotFound("billing.error.unknown_artisan", artisan=artisan_id)
        if db.get(CreditAccount, artisan_id) is None:
            blocked = False  # no credit account: no limit, nothing to compute
        else:
            blocked = balance(db, artisan_id)["credit_blocked"]
        if a.credit_blocked != blocked:
            a.credit_blocked = blocked
    return blocked


def refresh_site_credit_status(db: DbSession, site: str) -> int:
    """Refresh every artisan of a site that has a credit account; returns how many changed."""
    ids = db.scalars(
        select(CreditAccount.artisan_id)
        .join(Artisan, Artisan.id == CreditAccount.artisan_id)
        .where(Artisan.site == site)
    ).all()
    changed = 0
    for i in ids:
        before = db.get(Artisan, i).credit_blocked
        changed += refresh_credit_status(db, i) != before
    return changed

