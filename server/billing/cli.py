"""``crp billing``: billing runs and exports from the command line.

    crp billing run --period 2026-03 [--json] [--site DKR] [--database-url URL]
    crp billing export --period 2026-03 --format csv|pdf [--out PATH]

Bad input (period, site, a machine without a rate card...) prints a clear message and exits
with status 2; nothing is changed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from crp_common.i18n import normalize_lang, tr

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Billing runs and exports.")

EXIT_BAD_INPUT = 2


def _sessionmaker(database_url: str | None):  # noqa: ANN202
    from server.db import make_engine, make_sessionmaker
    from server.settings import ServerSettings

    settings = ServerSettings() if database_url is None else None
    url = database_url or settings.database_url
    engine = make_engine(url)
    return engine, make_sessionmaker(engine), (settings.default_site if settings else None)


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _run_guarded(fn, lang: str):  # noqa: ANN001, ANN202
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from .errors import BillingError

    try:
        return fn()
    except BillingError as e:
        _fail(e.message(lang))
    except (OperationalError, ProgrammingError) as e:
        _fail(tr("billing.cli.database_error", lang, error=str(e.orig or e).splitlines()[0]))


@app.command("run")
def run(
    period: str = typer.Option(..., "--period", help="Month to bill, YYYY-MM (site local time)."),
    json_out: bool = typer.Option(False, "--json", help="Print the invoices issued as JSON."),
    site: Optional[str] = typer.Option(None, "--site", help="Site code (default: the only site)."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: CRP_DATABASE_URL."),
    tax_bp: Optional[int] = typer.Option(None, "--tax-bp", help="Tax in basis points (1800 = 18 %)."),
    lang: Optional[str] = typer.Option(None, "--lang", help="Invoice language (fr or en)."),
) -> None:
    """Issue the period's invoices. Running it again issues nothing new."""
    from . import service

    ui = normalize_lang(lang)
    engine, sm, default_site = _sessionmaker(database_url)
    try:
        with sm() as db:
            docs = _run_guarded(
                lambda: service.run_billing(db, site or default_site, period, tax_bp=tax_bp, lang=lang),
                ui,
            )
    finally:
        engine.dispose()
    if json_out:
        sys.stdout.write(json.dumps([d.as_dict() for d in docs], ensure_ascii=False) + "\n")
        return
    if not docs:
        typer.echo(tr("billing.cli.nothing", ui, period=period))
    for d in docs:
        typer.echo(
            tr(
                "billing.cli.issued",
                ui,
                number=d.number,
                name=d.bill_to_name,
                lines=len(d.lines),
                total=d.total,
                currency=d.currency,
            )
        )


@app.command("export")
def export(
    period: str = typer.Option(..., "--period", help="Month, YYYY-MM."),
    fmt: str = typer.Option("csv", "--format", help="csv or pdf."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="CSV: file (default stdout). PDF: folder (default invoices-YYYY-MM)."
    ),
    site: Optional[str] = typer.Option(None, "--site"),
    database_url: Optional[str] = typer.Option(None, "--database-url"),
    lang: Optional[str] = typer.Option(None, "--lang", help="PDF language (default: the invoice's)."),
) -> None:
    """Export the period's invoices and credit notes: CSV for the accountant or one PDF each."""
    from . import service
    from .export import invoice_pdf, to_csv

    ui = normalize_lang(lang)
    if fmt not in ("csv", "pdf"):
        _fail(tr("billing.cli.bad_format", ui, format=fmt))
    engine, sm, default_site = _sessionmaker(database_url)
    try:
        with sm() as db:
            docs = _run_guarded(lambda: service.period_docs(db, site or default_site, period), ui)
    finally:
        engine.dispose()
    if fmt == "csv":
        text = to_csv(docs)
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, "utf-8", newline="")
            typer.echo(tr("billing.cli.written", ui, path=str(out), count=len(docs)), err=True)
        return
    folder = out or Path(f"invoices-{period}")
    folder.mkdir(parents=True, exist_ok=True)
    for d in docs:
        (folder / f"{d.number}.pdf").write_bytes(invoice_pdf(d, lang))
    typer.echo(tr("billing.cli.written", ui, path=str(folder), count=len(docs)))
