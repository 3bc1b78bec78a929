import csv
import io
import re
import zlib

import pytest

from server.billing.documents import DocLine, InvoiceDoc, SiteInfo
from server.billing.export import CSV_COLUMNS, invoice_pdf, to_csv

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
    """The text drawn on the pages (fpdf2 compresses page streams with zlib)."""
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            out.append(zlib.decompress(m.group(1)).decode("latin-1"))
        except zlib.error:
            continue
    return "".join(re.findall(r"\((.*?)\)\s*Tj", "".join(out)))


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
        assert w.encode("latin-1").decode("latin-1") in text, (w, text[:400])


def test_pdf_cooperative_invoice_groups_lines_by_artisan_and_credit_note_title():
    text = pdf_text(invoice_pdf(doc(cooperative="Coop Bois"), "fr"))
    assert "Coop Bois" in text and "Awa Diop" in text and "Fatou Sarr" in text
    credit = pdf_text(invoice_pdf(doc(kind="credit_note"), "en"))
    assert "Credit note" in credit
