import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.app import create_app
from server.billing.api import router
from server.billing.charges import EPOCH
from server.billing.models import Invoice, Payment, RateCardRow
from server.settings import ServerSettings

TOKEN = "billing-test-token"


def ms(*args: int) -> int:
    return (dt.datetime(*args, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(milliseconds=1)


@pytest.fixture
def client(world):
    settings = ServerSettings(
        database_url=world.url, demo_mode=False, secret_key="t", admin_token=TOKEN,
        default_site="DKR", _env_file=None
    )
    app = create_app(settings)
    app.include_router(router)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


CARD = {
    "site": "DKR",
    "machine_type": "bandsaw",
    "price_per_hour_member": 2000,
    "price_per_hour_non_member": 3000,
    "increment_minutes": 15,
    "rounding": "up",
    "minimum_minutes": 15,
    "effective_from": "2026-01-01",
}


def count(world, model):
    world.db.expire_all()
    return world.db.scalar(select(func.count()).select_from(model))


def test_needs_the_manager_token(world, client):
    r = client.get("/api/v1/invoices", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_rate_cards_create_and_list(world, client):
    r = client.post("/api/v1/rate-cards", json=CARD)
    assert r.status_code == 201, r.text
    assert r.json()["currency"] == "XOF" and r.json()["id"] >= 1
    assert [c["machine_type"] for c in client.get("/api/v1/rate-cards").json()] == ["bandsaw"]


@pytest.mark.parametrize(
    "change, status, word",
    [
        ({"price_per_hour_member": -100}, 422, "gati"),  # négatif / negative
        ({"increment_minutes": 0}, 422, "1"),
        ({"currency": "EUR"}, 422, "EUR"),
        ({"effective_to": "2025-01-01"}, 422, "2025-01-01"),
        ({"machine_type": "laser"}, 404, "laser"),
        ({"price_per_hour_member": 20.5}, 422, ""),
        ({"surprise": 1}, 422, ""),
    ],
)
def test_bad_rate_cards_are_refused_and_nothing_saved(world, client, change, status, word):
    r = client.post("/api/v1/rate-cards", json={**CARD, **change}, headers={"Accept-Language": "en"})
    assert r.status_code == status, r.text
    assert word in r.json()["detail"]
    assert count(world, RateCardRow) == 0


def test_overlapping_rate_cards_are_refused(world, client):
    assert client.post("/api/v1/rate-cards", json=CARD).status_code == 201
    r = client.post("/api/v1/rate-cards", json={**CARD, "effective_from": "2026-06-01"})
    assert r.status_code == 409 and "bandsaw" in r.json()["detail"]
    assert count(world, RateCardRow) == 1
    # closing the first card makes room for the price change
    card_id = client.get("/api/v1/rate-cards").json()[0]["id"]
    r = client.post(f"/api/v1/rate-cards/{card_id}/close", json={"effective_to": "2026-05-31"})
    assert r.status_code == 200 and r.json()["effective_to"] == "2026-05-31"
    assert client.post("/api/v1/rate-cards", json={**CARD, "effective_from": "2026-06-01"}).status_code == 201


def _bill(world, client):
    client.post("/api/v1/rate-cards", json=CARD)
    a = world.artisan("Awa Diop")
    world.session(a.id, ms(2026, 3, 10, 9, 0), 7)
    world.session(a.id, ms(2026, 3, 11, 9, 0), 61)
    r = client.post("/api/v1/billing/run", json={"period": "2026-03", "tax_bp": 1800})
    assert r.status_code == 200, r.text
    return a, r.json()


def test_billing_run_invoice_pdf_csv_and_rerun(world, client):
    a, invoices = _bill(world, client)
    (inv,) = invoices
    assert inv["number"] == "DKR-2026-000001" and inv["artisan"] == a.id
    assert [(ln["billed_minutes"], ln["amount"]) for ln in inv["lines"]] == [(15, 500), (75, 2500)]
    assert (inv["subtotal"], inv["tax"], inv["total"], inv["currency"]) == (3000, 540, 3540, "XOF")
    assert client.post("/api/v1/billing/run", json={"period": "2026-03"}).json() == []
    got = client.get(f"/api/v1/invoices/{inv['number']}").json()
    assert got["total"] == 3540 and got["status"] == "issued"
    assert [i["number"] for i in client.get("/api/v1/invoices?period=2026-03").json()] == [inv["number"]]
    pdf = client.get(f"/api/v1/invoices/{inv['number']}.pdf?lang=en")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    csv = client.get("/api/v1/billing/export.csv?period=2026-03")
    assert csv.status_code == 200 and csv.text.count("\n") == 3  # header + 2 lines
    assert client.get("/api/v1/invoices/DKR-2026-000009").status_code == 404
    assert client.get("/api/v1/invoices/nonsense.pdf").status_code == 404


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_edit_of_issued_invoice_is_409_and_changes_nothing(world, client, method):
    _a, (inv,) = _bill(world, client)
    r = client.request(method, f"/api/v1/invoices/{inv['number']}", json={"total": 1})
    assert r.status_code == 409 and r.json()["detail"]
    assert client.get(f"/api/v1/invoices/{inv['number']}").json()["total"] == 3540
    assert client.request(method, "/api/v1/invoices/DKR-2026-000099").status_code == 404


def test_credit_note_via_api(world, client):
    _a, (inv,) = _bill(world, client)
    r = client.post(f"/api/v1/invoices/{inv['number']}/credit-note", json={"reason": "erreur"})
    assert r.status_code == 201, r.text
    cn = r.json()
    assert cn["number"] == "DKR-AV-2026-000001" and cn["total"] == -3540
    assert client.get(f"/api/v1/invoices/{cn['number']}").json()["credits"] == inv["number"]
    assert client.get(f"/api/v1/invoices/{inv['number']}").json()["status"] == "credited"
    again = client.post(f"/api/v1/invoices/{inv['number']}/credit-note", json={})
    assert again.status_code == 409
    assert client.post("/api/v1/invoices/XX/credit-note", json={}).status_code == 404


def test_payments_balance_statement(world, client):
    a, _ = _bill(world, client)
    bad = client.post(
        "/api/v1/payments", json={"artisan": a.id, "amount": 1000, "currency": "EUR", "method": "cash"}
    )
    assert bad.status_code == 422 and "XOF" in bad.json()["detail"]
    for body in (
        {"artisan": a.id, "amount": -1, "currency": "XOF", "method": "cash"},
        {"artisan": a.id, "amount": 10, "currency": "XOF", "method": "paypal"},
        {"artisan": a.id, "amount": 10, "currency": "XOF", "method": "wave"},  # no reference
        {"artisan": 999, "amount": 10, "currency": "XOF", "method": "cash"},
    ):
        assert 400 <= client.post("/api/v1/payments", json=body).status_code < 500
    assert count(world, Payment) == 0
    ok = client.post(
        "/api/v1/payments",
        json={"artisan": a.id, "amount": 2000, "currency": "XOF", "method": "orange_money",
              "reference": "OM-42"},
    )
    assert ok.status_code == 201, ok.text
    assert [p["reference"] for p in client.get(f"/api/v1/payments?artisan={a.id}").json()] == ["OM-42"]
    b = client.get(f"/api/v1/artisans/{a.id}/balance").json()
    assert (b["invoiced"], b["paid"], b["balance"]) == (3540, 2000, 1540)
    st = client.get(f"/api/v1/artisans/{a.id}/statement").json()
    assert [e["balance"] for e in st["entries"]] == [3540, 1540]
    assert client.get("/api/v1/artisans/999/balance").status_code == 404


def test_credit_account_sets_the_snapshot_flag(world, client):
    a, _ = _bill(world, client)  # owes 3,540
    r = client.put(f"/api/v1/artisans/{a.id}/credit-account", json={"credit_limit": 3000})
    assert r.status_code == 200 and r.json()["credit_blocked"] is True
    world.db.expire_all()
    assert world.db.get(type(a), a.id).credit_blocked is True
    r = client.put(f"/api/v1/artisans/{a.id}/credit-account", json={"credit_limit": 5000})
    assert r.json()["credit_blocked"] is False


def test_site_is_required_when_there_is_no_default(world):
    settings = ServerSettings(
        database_url=world.url, demo_mode=False, secret_key="t", admin_token=TOKEN, _env_file=None
    )
    app = create_app(settings)
    app.include_router(router)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = c.post("/api/v1/billing/run", json={"period": "2026-03"})
    assert r.status_code == 422 and r.json()["code"] == "billing.error.site_required"


def test_bad_period_is_422(world, client):
    assert client.post("/api/v1/billing/run", json={"period": "2026-13"}).status_code == 422
    assert client.get("/api/v1/billing/export.csv?period=march").status_code == 422
    assert count(world, Invoice) == 0
