"""PostgreSQL: invoice lines' references are checked once per statement instead of once per row.

A billing run inserts all its lines with one COPY. PostgreSQL checks a foreign key with a query
per row, and the two keys of ``invoice_lines`` (``invoice_id``, ``rate_card_id``) were 40% of
the run. They are replaced by a statement-level trigger: one pass over the new lines collects
the few invoices and rate cards they refer to, which are locked FOR KEY SHARE (as the foreign
keys did, so a concurrent delete waits for the run) and checked. The parent side is kept too:

- invoices: UPDATE and DELETE are already refused (0002's immutability triggers). TRUNCATE is
  now refused as well.
- rate_cards: a DELETE, an UPDATE of the id, or a TRUNCATE that would leave a line without its
  card is refused.

Violations raise ``foreign_key_violation`` (SQLSTATE 23503), as a foreign key would. SQLite
keeps its foreign keys: they are checked in C and cost little there.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

REFERENCES = (("invoice_id", "invoices"), ("rate_card_id", "rate_cards"))

CHECK_LINES = """
CREATE FUNCTION invoice_lines_check_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  invoice_ids bigint[];
  card_ids bigint[];
  missing text;
BEGIN
  -- one pass over the new lines: the (few) distinct references they make
  SELECT array_agg(DISTINCT r.invoice_id), array_agg(DISTINCT r.rate_card_id)
    INTO invoice_ids, card_ids
    FROM (SELECT invoice_id, rate_card_id FROM new_lines GROUP BY 1, 2) r;
  -- lock the parents as a foreign key check would: a concurrent delete waits for us
  PERFORM 1 FROM invoices WHERE id = ANY (invoice_ids) FOR KEY SHARE;
  PERFORM 1 FROM rate_cards WHERE id = ANY (card_ids) FOR KEY SHARE;
  SELECT 'invoice ' || x INTO missing FROM unnest(invoice_ids) x
    WHERE x IS NOT NULL AND NOT EXISTS (SELECT 1 FROM invoices WHERE id = x) LIMIT 1;
  IF missing IS NULL THEN
    SELECT 'rate card ' || x INTO missing FROM unnest(card_ids) x
      WHERE x IS NOT NULL AND NOT EXISTS (SELECT 1 FROM rate_cards WHERE id = x) LIMIT 1;
  END IF;
  IF missing IS NOT NULL THEN
    RAISE foreign_key_violation USING
      MESSAGE = 'invoice line refers to a missing ' || missing,
      TABLE = 'invoice_lines';
  END IF;
  RETURN NULL;
END $$
"""

KEEP_CARDS = """
CREATE FUNCTION rate_cards_keep_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    IF EXISTS (SELECT 1 FROM invoice_lines WHERE rate_card_id IS NOT NULL) THEN
      RAISE foreign_key_violation USING
        MESSAGE = 'rate cards are referenced by invoice lines', TABLE = 'rate_cards';
    END IF;
    RETURN NULL;
  END IF;
  IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id)
     AND EXISTS (SELECT 1 FROM invoice_lines WHERE rate_card_id = OLD.id) THEN
    RAISE foreign_key_violation USING
      MESSAGE = 'rate card ' || OLD.id || ' is referenced by invoice lines', TABLE = 'rate_cards';
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NEW;
END $$
"""


def _line_foreign_keys(bind) -> dict[str, str]:  # noqa: ANN001
    """Referred table -> name of invoice_lines' foreign key to it."""
    parents = {table for _column, table in REFERENCES}
    return {
        fk["referred_table"]: fk["name"]
        for fk in sa.inspect(bind).get_foreign_keys("invoice_lines")
        if fk["referred_table"] in parents
    }


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name in _line_foreign_keys(bind).values():
        op.drop_constraint(name, "invoice_lines", type_="foreignkey")
    op.execute(CHECK_LINES)
    op.execute(
        "CREATE TRIGGER invoice_lines_check_refs AFTER INSERT ON invoice_lines "
        "REFERENCING NEW TABLE AS new_lines "
        "FOR EACH STATEMENT EXECUTE FUNCTION invoice_lines_check_refs()"
    )
    op.execute(KEEP_CARDS)
    op.execute(
        "CREATE TRIGGER rate_cards_keep_referenced BEFORE DELETE OR UPDATE OF id ON rate_cards "
        "FOR EACH ROW EXECUTE FUNCTION rate_cards_keep_referenced()"
    )
    op.execute(
        "CREATE TRIGGER rate_cards_keep_referenced_truncate BEFORE TRUNCATE ON rate_cards "
        "FOR EACH STATEMENT EXECUTE FUNCTION rate_cards_keep_referenced()"
    )
    op.execute(  # issued invoices are immutable (0002): not truncated either
        "CREATE TRIGGER invoices_no_truncate BEFORE TRUNCATE ON invoices "
        "FOR EACH STATEMENT EXECUTE FUNCTION billing_immutable()"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS invoices_no_truncate ON invoices")
    op.execute("DROP TRIGGER IF EXISTS rate_cards_keep_referenced_truncate ON rate_cards")
    op.execute("DROP TRIGGER IF EXISTS rate_cards_keep_referenced ON rate_cards")
    op.execute("DROP FUNCTION IF EXISTS rate_cards_keep_referenced()")
    op.execute("DROP TRIGGER IF EXISTS invoice_lines_check_refs ON invoice_lines")
    op.execute("DROP FUNCTION IF EXISTS invoice_lines_check_refs()")
    for column, table in REFERENCES:
        op.create_foreign_key(f"invoice_lines_{column}_fkey", "invoice_lines", table, [column], ["id"])
