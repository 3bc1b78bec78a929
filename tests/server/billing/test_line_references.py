"""An invoice line always has its invoice and its rate card. SQLite holds this with foreign
keys; PostgreSQL, since migration 0008, with a statement-level check (a billing run's COPY is
checked in one query instead of one per line) and triggers on the parent tables."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from server.billing import service
from server.billing.errors import Conflict
from server.billing.models import InvoiceLine
from tests.server.billing.conftest import ms

ISSUED = dt.datetime(2026, 4, 2, 9, 0, tzinfo=dt.UTC)


def _bill(world, brief_card):
    a = world.artisan("Awa")
    world.session(a.id, ms(2026, 3, 2, 9, 0), 30)
    world.session(a.id, ms(2026, 3, 3, 9, 0), 45)
    docs = service.run_billing(world.db, "DKR", "2026-03", ISSUED, tax_bp=1800)
    assert len(docs) == 1
    return world.db.query(InvoiceLine).order_by(InvoiceLine.id).all()


def _charge(line: InvoiceLine, session_id: str, rate_card_id: int | None) -> tuple:
    """A charge tuple in the order billing inserts (service._Charge), copied from ``line``."""
    fields = {f: getattr(line, f) for f in service._Charge._fields}
    return tuple(service._Charge(**{**fields, "session_id": session_id, "rate_card_id": rate_card_id}))


def _is_postgres(world) -> bool:
    return world.url.startswith("postgresql")


def test_lines_without_their_invoice_or_rate_card_are_refused_not_taken_for_a_race(world, brief_card):
    line = _bill(world, brief_card)[0]
    cases = {
        "invoice": [(999_999, [_charge(line, "new-1", line.rate_card_id)])],
        "rate card": [(line.invoice_id, [_charge(line, "new-2", 999_999)])],
        # one bad line among good ones: the whole statement is refused
        "mixed": [(line.invoice_id, [_charge(line, f"new-3-{i}", line.rate_card_id) for i in range(50)]),
                  (999_999, [_charge(line, "new-4", line.rate_card_id)])],
    }
    dbapi_error = world.db.connection().dialect.loaded_dbapi.IntegrityError  # COPY's error is raw
    for what, invoices in cases.items():
        with pytest.raises((IntegrityError, dbapi_error)) as err:  # not a Conflict: that is a race
            service._insert_lines(world.db, invoices)
        assert not isinstance(err.value, Conflict)
        if _is_postgres(world) and what != "mixed":
            assert f"missing {what}" in str(err.value)
        world.db.rollback()
        assert world.db.query(InvoiceLine).count() == 2, what
    # a session already billed is the race, and says so
    with pytest.raises(Conflict):
        service._insert_lines(world.db, [(line.invoice_id, [_charge(line, line.session_id, line.rate_card_id)])])
    world.db.rollback()


def test_a_rate_card_on_an_invoice_cannot_be_deleted_or_renumbered(world, brief_card):
    line = _bill(world, brief_card)[0]
    unused = service.create_rate_card(
        world.db, "DKR", machine_type="lathe", price_per_hour_member=1000,
        price_per_hour_non_member=1500, effective_from=dt.date(2026, 1, 1),
    )
    for sql in (f"DELETE FROM rate_cards WHERE id = {line.rate_card_id}",
                f"UPDATE rate_cards SET id = 424242 WHERE id = {line.rate_card_id}"):
        with pytest.raises(IntegrityError):
            world.db.execute(text(sql))
            world.db.flush()
        world.db.rollback()
    # closing the card (its end date) is still allowed, and an unused card can go
    world.db.execute(text(f"UPDATE rate_cards SET effective_to = '2026-12-31' WHERE id = {line.rate_card_id}"))
    world.db.execute(text(f"DELETE FROM rate_cards WHERE id = {unused.id}"))
    world.db.commit()


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_postgres_refuses_to_truncate_what_lines_refer_to(world, brief_card):
    """(TRUNCATE is PostgreSQL's; on SQLite the foreign keys cover DELETE.)"""
    assert _is_postgres(world)
    _bill(world, brief_card)
    for table in ("invoices", "rate_cards"):
        with pytest.raises(DBAPIError):
            world.db.execute(text(f"TRUNCATE {table} CASCADE"))
        world.db.rollback()
    assert world.db.query(InvoiceLine).count() == 2


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_migration_0008_swaps_foreign_keys_for_the_statement_check_and_back(world):
    """(0008 changes nothing on SQLite.)"""
    assert _is_postgres(world)
    from alembic import command

    from server.db import alembic_config, upgrade

    def state():
        engine = create_engine(world.url)
        try:
            fks = {fk["referred_table"] for fk in inspect(engine).get_foreign_keys("invoice_lines")}
            with engine.connect() as c:
                triggers = set(c.execute(text(
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                    "AND tgrelid IN ('invoice_lines'::regclass, 'rate_cards'::regclass, 'invoices'::regclass)"
                )).scalars())
            return fks, triggers
        finally:
            engine.dispose()

    ours = {"invoice_lines_check_refs", "rate_cards_keep_referenced",
            "rate_cards_keep_referenced_truncate", "invoices_no_truncate"}
    world.db.close()
    fks, triggers = state()
    assert not fks & {"invoices", "rate_cards"} and ours <= triggers
    command.downgrade(alembic_config(world.url), "0007")
    fks, triggers = state()
    assert fks >= {"invoices", "rate_cards"} and not ours & triggers
    upgrade(world.url)
    fks, triggers = state()
    assert not fks & {"invoices", "rate_cards"} and ours <= triggers
