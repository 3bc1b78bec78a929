import csv
import dataclasses
import io
import shutil
import subprocess

import pytest

from server.billing import export
from server.billing.documents import DocLine, InvoiceDoc, SiteInfo
from server.billing.export import CSV_COLUMNS, invoice_pdf, to_csv, unicode_font_dir

from tests.conftest import need_service

SITE = SiteInfo(code="DKR", name="CRP Dakar Médina", address="Rue 6, Médina, Dakar",
                phone="+221 33 000 00 00", tax_id="NINEA 0012345", tz="Africa/Dakar")


def doc(kind="invoice", cooperative=None, lines=None) -> InvoiceDoc:
    lines = lines or [
        DocLine("s1", "bandsaw-1", "2026-03-10T09:00:00+00:00", "2026-03-10T09:07:00+00:00",
                "badge", 420, 15, 2000, 500, artisan_id=1, artisan_name="Awa Diop"),
        DocLine("s2", "bandsaw-1", "2026-03-11T14:00:00+00:00", "2026-03-11T15:01:00+00:00",
                "badge", 3660, 75, 2000, 2500, artisan_id=2, artisan_name="Fatou Sarr"),
    ]
    sub = sum(ln.amount for ln in lines)
    return InvoiceDoc(
        kind=kind, number="DKR-2026-000001", site=SITE, artisan=None if cooperative else 1,
        cooperative=cooperative, bill_to_name=cooperative or "Awa Diop", period="2026-03",
        issued_at_local="2026-04-01T08:00:00+00:00", currency="XOF", subtotal=sub, tax_bp=1800,
        tax=540, total=sub + 540, lines=lines,
    )


def pdf_text(data: bytes) -> str:
    """The text of the pages, as poppler's pdftotext reads it (what a reader copies)."""
    tool = shutil.which("pdftotext")
    if tool is None:
        need_service("pdftotext is not installed (apt-get install poppler-utils)")
    out = subprocess.run([tool, "-layout", "-", "-"], input=data, capture_output=True, check=True, timeout=60)
    return out.stdout.decode("utf-8")


@pytest.fixture(autouse=True)
def _unicode_font():
    if unicode_font_dir() is None:
        need_service("the DejaVu Sans font is not installed (apt-get install fonts-dejavu-core)")


def test_csv_one_row_per_line_integers_and_currency():
    rows = list(csv.DictReader(io.StringIO(to_csv([doc()]))))
    assert len(rows) == 2 and list(rows[0]) == list(CSV_COLUMNS)
    assert [r["amount"] for r in rows] == ["500", "2500"]
    assert {r["currency"] for r in rows} == {"XOF"}
    assert rows[1]["document_total"] == "3540" and rows[1]["measured_seconds"] == "3660"


@pytest.mark.parametrize(
    "lang, words",
    [
        ("fr", ["Facture DKR-2026-000001", "Sous-total", "TVA 18 %", "Total", "3 540 XOF", "Médina"]),
        ("en", ["Invoice DKR-2026-000001", "Subtotal", "VAT 18%", "Total due", "3,540 XOF"]),
    ],
)
def test_pdf_in_french_and_english_with_site_details(lang, words):
    data = invoice_pdf(doc(), lang)
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    for w in words + ["NINEA 0012345", "bandsaw-1", "61 min 00 s", "75 min", "2026-03-11 14:00"]:
        assert w in text, (w, text[:400])


def test_pdf_cooperative_invoice_groups_lines_by_artisan_and_credit_note_title():
    text = pdf_text(invoice_pdf(doc(cooperative="Coop Bois"), "fr"))
    assert "Coop Bois" in text and "Awa Diop" in text and "Fatou Sarr" in text
    credit = pdf_text(invoice_pdf(doc(kind="credit_note"), "en"))
    assert "Credit note" in credit


def test_pdf_prints_names_and_dashes_outside_latin1():
    d = doc()
    d = dataclasses.replace(d, site=dataclasses.replace(d.site, name="CRP de Dakar — Colobane"),
                            bill_to_name="Cœur Ndiaye")
    text = pdf_text(invoice_pdf(d, "fr"))
    assert "CRP de Dakar — Colobane" in text and "Cœur Ndiaye" in text, text[:400]


def test_without_the_font_the_pdf_falls_back_to_latin1_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(export, "FONT_DIRS", ())
    monkeypatch.delenv("CRP_PDF_FONT_DIR", raising=False)
    unicode_font_dir.cache_clear()
    try:
        d = dataclasses.replace(doc(), bill_to_name="Cœur Ndiaye")
        text = pdf_text(invoice_pdf(d, "fr"))
        assert "C?ur Ndiaye" in text and "Médina" in text
        assert "fonts-dejavu-core" in caplog.text
    finally:
        unicode_font_dir.cache_clear()
