"""Exports: CSV for the accountant and a PDF invoice (fpdf2) in French or English.

Both render :class:`~server.billing.documents.InvoiceDoc` values and do no database work."""

from __future__ import annotations

import csv
import io
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from fpdf import FPDF

from crp_common.i18n import normalize_lang, tr

from .documents import InvoiceDoc
from .money import format_amount
from .tax import format_rate

CSV_COLUMNS = (
    "document",
    "kind",
    "site",
    "issued_at",
    "period",
    "bill_to_kind",
    "bill_to_id",
    "bill_to_name",
    "artisan_id",
    "artisan_name",
    "session_id",
    "machine",
    "start_local",
    "end_local",
    "basis",
    "measured_seconds",
    "billed_minutes",
    "rate_per_hour",
    "amount",
    "currency",
    "document_subtotal",
    "document_tax_bp",
    "document_tax",
    "document_total",
    "credits",
    "energy_wh",
    "price_per_kwh",
    "energy_amount",
)


def to_csv(docs: Iterable[InvoiceDoc]) -> str:
    """One row per invoice or credit-note line; amounts are integers in the currency's minor
    unit, with the currency in its own column. Credit-note amounts are negative."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for d in docs:
        for ln in d.lines:
            w.writerow(
                (
                    d.number,
                    d.kind,
                    d.site.code,
                    d.issued_at_local,
                    d.period,
                    d.bill_to_kind,
                    d.bill_to_id,
                    d.bill_to_name,
                    "" if ln.artisan_id is None else ln.artisan_id,
                    ln.artisan_name,
                    ln.session_id,
                    ln.machine,
                    ln.start_local,
                    ln.end_local,
                    ln.basis,
                    ln.measured_seconds,
                    ln.billed_minutes,
                    ln.rate_per_hour,
                    ln.amount,
                    d.currency,
                    d.subtotal,
                    d.tax_bp,
                    d.tax,
                    d.total,
                    d.credits or "",
                    "" if ln.energy_wh is None else ln.energy_wh,
                    ln.price_per_kwh,
                    ln.energy_amount,
                )
            )
    return buf.getvalue()


# --------------------------------------------------------------------------- PDF

PAGE_MARGIN_MM = 12
COLS_MM = (30, 30, 30, 22, 17, 27, 30)  # machine, start, end, measured, billed, rate, amount
# A Unicode TrueType font (Debian: fonts-dejavu-core) so that names, dashes and "œ" print as
# typed. Without it the PDF falls back to the core fonts, which only speak Latin-1.
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts/dejavu")
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}
UNICODE_FAMILY = "DejaVu"
CORE_FAMILY = "Helvetica"

log = logging.getLogger("crp.billing")


@lru_cache(maxsize=1)
def unicode_font_dir() -> Path | None:
    """Where the DejaVu Sans files are (``CRP_PDF_FONT_DIR`` first), or None."""
    env = os.environ.get("CRP_PDF_FONT_DIR")
    for d in ([env] if env else []) + list(FONT_DIRS):
        if all((Path(d) / f).is_file() for f in FONT_FILES.values()):
            return Path(d)
    log.warning("no DejaVu Sans font found (install fonts-dejavu-core or set CRP_PDF_FONT_DIR): PDF invoices "
                "use the core fonts, and characters outside Latin-1 print as '?'")
    return None


def _latin1(text: str) -> str:
    """The PDF core fonts speak Latin-1: keep accents, replace what cannot be shown."""
    text = text.replace("\u202f", " ").replace("\u2192", "->").replace("\u2026", "...")
    return text.encode("latin-1", "replace").decode("latin-1")


def _as_is(text: str) -> str:
    return text


def format_kwh(wh: int, lang: str) -> str:
    """Whole Wh as kWh with three decimals, in the reader's convention: ``1,235`` (fr) or
    ``1.235`` (en)."""
    text = f"{wh // 1000}.{wh % 1000:03d}"
    return text.replace(".", ",") if lang == "fr" else text


def _local(ts: str) -> str:
    """``2026-03-10T10:00:00+01:00`` -> ``2026-03-10 10:00``."""
    return ts[:16].replace("T", " ")


class _Pdf(FPDF):
    def __init__(self, doc: InvoiceDoc, lang: str):
        super().__init__(orientation="P", unit="mm", format="A4")
        self.doc, self.lang = doc, lang
        fonts = unicode_font_dir()
        if fonts is not None:
            for style, name in FONT_FILES.items():
                self.add_font(UNICODE_FAMILY, style, str(fonts / name))
            self.family, self.text = UNICODE_FAMILY, _as_is
        else:
            self.family, self.text = CORE_FAMILY, _latin1
        self.set_margins(PAGE_MARGIN_MM, PAGE_MARGIN_MM, PAGE_MARGIN_MM)
        self.set_auto_page_break(True, margin=18)
        self.set_title(self.text(f"{self._t('billing.pdf.' + doc.kind)} {doc.number}"))
        self.set_creator("CRP Workshop Tracker")

    def _t(self, key: str, **params: object) -> str:
        return self.text(tr(key, self.lang, **params))

    def font(self, style: str, size: float) -> None:
        self.set_font(self.family, style, size)

    def footer(self) -> None:
        self.set_y(-14)
        self.font("I", 8)
        self.cell(
            0, 5, self._t("billing.pdf.page", page=self.page_no(), number=self.doc.number),
            align="C",
        )


def invoice_pdf(doc: InvoiceDoc, lang: str | None = None) -> bytes:
    """The invoice (or credit note) as a PDF, in ``lang`` (default: the document's)."""
    lang = normalize_lang(lang or doc.lang)
    pdf = _Pdf(doc, lang)
    t, show = pdf._t, pdf.text
    money = lambda v: show(format_amount(v, doc.currency, lang))  # noqa: E731
    pdf.add_page()
    width = pdf.w - 2 * PAGE_MARGIN_MM

    # Site (issuer) block
    site = doc.site
    pdf.font("B", 14)
    pdf.cell(width, 7, show(site.name or site.code), new_x="LMARGIN", new_y="NEXT")
    pdf.font("", 9)
    for text in (site.address, site.phone, site.email):
        if text:
            pdf.cell(width, 4.5, show(text), new_x="LMARGIN", new_y="NEXT")
    if site.tax_id:
        pdf.cell(width, 4.5, t("billing.pdf.tax_id", value=site.tax_id), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    # Title and references
    pdf.font("B", 16)
    pdf.cell(width, 9, f"{t('billing.pdf.' + doc.kind)} {doc.number}", new_x="LMARGIN", new_y="NEXT")
    pdf.font("", 10)
    refs = [
        t("billing.pdf.issued_at", date=_local(doc.issued_at_local)),
        t("billing.pdf.period", period=doc.period),
        t("billing.pdf.bill_to_" + doc.bill_to_kind, name=doc.bill_to_name, id=doc.bill_to_id),
    ]
    if doc.credits:
        refs.append(t("billing.pdf.credits", number=doc.credits))
    if doc.reason:
        refs.append(t("billing.pdf.reason", reason=doc.reason))
    if doc.status == "credited":
        refs.append(t("billing.pdf.status_credited"))
    for text in refs:
        pdf.cell(width, 5.5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    # Lines
    heads = ("machine", "start", "end", "measured", "billed", "rate", "amount")
    pdf.font("B", 8.5)
    pdf.set_fill_color(230, 230, 230)
    for w, h in zip(COLS_MM, heads):
        pdf.cell(w, 6, t("billing.pdf.col_" + h), border=1, fill=True, align="C")
    pdf.ln()
    pdf.font("", 8.5)
    last_artisan = None
    for ln in doc.lines:
        if doc.bill_to_kind == "cooperative" and ln.artisan_id != last_artisan:
            pdf.font("B", 8.5)
            pdf.cell(sum(COLS_MM), 5.5, show(ln.artisan_name or str(ln.artisan_id)), border=1)
            pdf.ln()
            pdf.font("", 8.5)
            last_artisan = ln.artisan_id
        m, s = divmod(ln.measured_seconds, 60)
        cells = (
            show(ln.machine),
            _local(ln.start_local),
            _local(ln.end_local),
            f"{m} min {s:02d} s",
            f"{ln.billed_minutes} min",
            money(ln.rate_per_hour) + "/h",
            money(ln.amount),
        )
        for i, (w, text) in enumerate(zip(COLS_MM, cells)):
            pdf.cell(w, 5.5, text, border=1, align="R" if i >= 3 else "L")
        pdf.ln()
        if ln.energy_amount or (ln.price_per_kwh and ln.energy_wh is not None):
            # Energy priced by the rate card: included in the line's amount, explained below it.
            pdf.font("I", 8)
            kwh = format_kwh(ln.energy_wh or 0, lang)
            pdf.cell(sum(COLS_MM[:-1]), 5, t("billing.pdf.energy_line", kwh=kwh, price=money(ln.price_per_kwh)),
                     border="LRB")
            pdf.cell(COLS_MM[-1], 5, money(ln.energy_amount), border="RB", align="R")
            pdf.ln()
            pdf.font("", 8.5)
    pdf.ln(2)

    # Totals
    label_w, value_w = sum(COLS_MM[:-2]), sum(COLS_MM[-2:])
    pdf.font("", 10)
    pdf.cell(label_w, 6, t("billing.pdf.subtotal"), align="R")
    pdf.cell(value_w, 6, money(doc.subtotal), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(label_w, 6, t("billing.pdf.tax", rate=format_rate(doc.tax_bp)), align="R")
    pdf.cell(value_w, 6, money(doc.tax), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.font("B", 11)
    pdf.cell(label_w, 7, t("billing.pdf.total"), align="R")
    pdf.cell(value_w, 7, money(doc.total), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(5)

    # How it was computed: enough for the artisan to check it by hand
    pdf.font("I", 8)
    bases = sorted({ln.basis for ln in doc.lines})
    for b in bases:
        pdf.multi_cell(width, 4, t("billing.pdf.basis_note_" + b), new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(width, 4, t("billing.pdf.how"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
