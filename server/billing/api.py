"""Billing HTTP API (manager endpoints, bearer ``admin_token`` like the registry).

Mount with ``app.include_router(server.billing.api.router)``. Refusals are 4xx with a
translated message (Accept-Language) and change nothing: bad rate cards 422, overlapping rate
cards 409, payment in the wrong currency 422, any edit of an issued invoice 409."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from server.api.deps import Authorized, Db, Settings
from server.errors import ApiError
from server.security.audit import audit

from . import service
from .errors import BillingError
from .export import invoice_pdf, to_csv
from .models import PAYMENT_METHODS
from .numbering import CREDIT_NOTE, parse_number

router = APIRouter(prefix="/api/v1", tags=["billing"], dependencies=[Authorized])

MAX_ID = 2**31 - 1
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
Money = Annotated[int, Field(ge=0, le=10**12)]
Minutes = Annotated[int, Field(ge=0, le=24 * 60)]
Period = Annotated[str, Field(pattern=r"^\d{4}-\d{2}$", examples=["2026-03"])]
SiteCode = Annotated[str, Field(pattern=r"^[A-Z0-9]{2,8}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


def _api(e: BillingError) -> ApiError:
    return ApiError(e.status, e.key, **e.params)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- rate cards


class RateCardIn(_In):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    site: SiteCode | None = None
    machine: Annotated[str, Field(max_length=48)] | None = Field(
        default=None, validation_alias=AliasChoices("machine", "scope_machine")
    )
    machine_type: Annotated[str, Field(max_length=48)] | None = Field(
        default=None, validation_alias=AliasChoices("machine_type", "scope_type")
    )
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    # Signs and zero are checked by the domain so the message says exactly what is wrong.
    price_per_hour_member: int
    price_per_hour_non_member: int
    basis: str = "badge"
    increment_minutes: int = 15
    rounding: str = "up"
    minimum_minutes: int = 0
    grace_minutes: int = 0
    effective_from: dt.date
    effective_to: dt.date | None = None
    price_per_kwh: int = 0  # metered energy (plugs, meters), minor units per kWh; 0: not priced


class RateCardClose(_In):
    effective_to: dt.date


@router.post("/rate-cards", status_code=201)
def create_rate_card(body: RateCardIn, db: Db, settings: Settings, request: Request) -> dict[str, Any]:
    fields = body.model_dump(exclude={"site"}, exclude_none=True)
    fields.setdefault("effective_to", None)
    try:
        row = service.create_rate_card(db, body.site or settings.default_site, **fields)
    except BillingError as e:
        raise _api(e) from None
    out = service.rate_card_dict(row)
    audit(db, request, "rate_card.created", "rate_card", row.id, out)
    db.commit()
    return out


@router.get("/rate-cards")
def list_rate_cards(db: Db, site: SiteCode | None = None) -> list[dict[str, Any]]:
    return [service.rate_card_dict(r) for r in service.list_rate_cards(db, site)]


@router.post("/rate-cards/{card_id}/close")
def close_rate_card(card_id: PathId, body: RateCardClose, db: Db, request: Request) -> dict[str, Any]:
    """End a card on a date (inclusive), before a price change."""
    try:
        out = service.rate_card_dict(service.close_rate_card(db, card_id, body.effective_to))
    except BillingError as e:
        raise _api(e) from None
    audit(db, request, "rate_card.closed", "rate_card", card_id, {"effective_to": body.effective_to})
    db.commit()
    return out


# --------------------------------------------------------------------------- billing run


class BillingRunIn(_In):
    period: Period
    site: SiteCode | None = None
    tax_bp: Annotated[int, Field(ge=0, le=10_000)] | None = None
    lang: Literal["fr", "en"] | None = None


@router.post("/billing/run")
def run_billing(body: BillingRunIn, db: Db, settings: Settings, request: Request) -> list[dict[str, Any]]:
    """Issue the period's invoices; running it again issues nothing (answers [])."""
    try:
        site = body.site or settings.default_site
        docs = service.run_billing(db, site, body.period, tax_bp=body.tax_bp, lang=body.lang)
    except BillingError as e:
        raise _api(e) from None
    out = [d.as_dict() for d in docs]
    for d in out:
        audit(db, request, "invoice.issued", "invoice", d.get("number"),
              {"period": body.period, "total": d.get("total"), "currency": d.get("currency")})
    db.commit()
    return out


@router.get("/billing/export.csv", response_class=PlainTextResponse)
def export_csv(
    db: Db, settings: Settings, period: Period, site: SiteCode | None = None
) -> Response:
    try:
        docs = service.period_docs(db, site or settings.default_site, period)
    except BillingError as e:
        raise _api(e) from None
    return Response(
        to_csv(docs),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="invoices-{period}.csv"'},
    )


# --------------------------------------------------------------------------- invoices


def _doc(db, number: str):  # noqa: ANN001, ANN202
    try:
        kind = parse_number(number).kind
        if kind == CREDIT_NOTE:
            return service.credit_note_doc(db, service.get_credit_note(db, number))
        return service.invoice_doc(db, service.get_invoice(db, number))
    except BillingError as e:
        if e.key == "billing.error.bad_number":
            raise ApiError(404, "billing.error.unknown_invoice", number=number) from None
        raise _api(e) from None


@router.get("/invoices")
def list_invoices(
    db: Db,
    site: SiteCode | None = None,
    period: Period | None = None,
    artisan: Annotated[int, Query(ge=1, le=MAX_ID)] | None = None,
) -> list[dict[str, Any]]:
    try:
        invs = service.list_invoices(db, site, period, artisan)
    except BillingError as e:
        raise _api(e) from None
    return [service.invoice_doc(db, i).as_dict() for i in invs]


@router.get("/invoices/{number}.pdf")
def get_invoice_pdf(number: str, db: Db, lang: Literal["fr", "en"] | None = None) -> Response:
    doc = _doc(db, number)
    return Response(
        invoice_pdf(doc, lang),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{number}.pdf"'},
    )


@router.get("/invoices/{number}")
def get_invoice(number: str, db: Db) -> dict[str, Any]:
    return _doc(db, number).as_dict()


@router.api_route("/invoices/{number}", methods=["PATCH", "PUT", "DELETE"], include_in_schema=False)
def edit_invoice(number: str, db: Db) -> None:
    """Issued invoices are immutable: 409 (404 if there is no such invoice)."""
    _doc(db, number)
    raise ApiError(409, "billing.error.immutable", table="invoices")


class CreditNoteIn(_In):
    lines: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, description="invoice line ids to credit; all remaining lines if omitted"
    )
    reason: Text = ""
    lang: Literal["fr", "en"] | None = None


@router.post("/invoices/{number}/credit-note", status_code=201)
def credit_note(number: str, body: CreditNoteIn, db: Db, request: Request) -> dict[str, Any]:
    if parse_number_or_none(number) is None:
        raise ApiError(404, "billing.error.unknown_invoice", number=number)
    try:
        doc = service.issue_credit_note(db, number, body.lines, body.reason, lang=body.lang)
    except BillingError as e:
        raise _api(e) from None
    out = doc.as_dict()
    audit(db, request, "invoice.credited", "invoice", number,
          {"credit_note": out.get("number"), "total": out.get("total"), "reason": body.reason})
    db.commit()
    return out


def parse_number_or_none(number: str):  # noqa: ANN201
    try:
        return parse_number(number)
    except BillingError:
        return None


# --------------------------------------------------------------------------- payments


class PaymentIn(_In):
    artisan: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None
    cooperative: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    site: SiteCode | None = None
    amount: int
    currency: Annotated[str, Field(min_length=3, max_length=3)]
    method: Literal[PAYMENT_METHODS]  # type: ignore[valid-type]
    reference: Annotated[str, Field(max_length=80)] = ""
    received_at: dt.datetime | None = None


@router.post("/payments", status_code=201)
def create_payment(body: PaymentIn, db: Db, request: Request) -> dict[str, Any]:
    received = body.received_at
    if received is not None and received.tzinfo is None:
        raise ApiError(422, "billing.error.naive_time")
    try:
        p = service.record_payment(
            db,
            body.amount,
            body.currency,
            body.method,
            body.reference,
            received,
            artisan=body.artisan,
            cooperative=body.cooperative,
            site=body.site,
        )
    except BillingError as e:
        raise _api(e) from None
    out = service.payment_dict(p)
    audit(db, request, "payment.recorded", "payment", p.id, out)
    db.commit()
    return out


@router.get("/payments")
def list_payments(
    db: Db,
    artisan: Annotated[int, Query(ge=1, le=MAX_ID)] | None = None,
    site: SiteCode | None = None,
) -> list[dict[str, Any]]:
    return [service.payment_dict(p) for p in service.list_payments(db, artisan, site)]


# --------------------------------------------------------------------------- balances


class CreditAccountIn(_In):
    prepaid: bool = False
    credit_limit: Money | None = None


@router.get("/artisans/{artisan_id}/balance")
def artisan_balance(artisan_id: PathId, db: Db) -> dict[str, Any]:
    try:
        return service.balance(db, artisan_id)
    except BillingError as e:
        raise _api(e) from None


@router.get("/artisans/{artisan_id}/statement")
def artisan_statement(artisan_id: PathId, db: Db) -> dict[str, Any]:
    try:
        return service.statement(db, artisan=artisan_id)
    except BillingError as e:
        raise _api(e) from None


@router.put("/artisans/{artisan_id}/credit-account")
def put_credit_account(
    artisan_id: PathId, body: CreditAccountIn, db: Db, request: Request
) -> dict[str, Any]:
    try:
        service.set_credit_account(db, artisan_id, body.prepaid, body.credit_limit)
        out = service.balance(db, artisan_id)
    except BillingError as e:
        raise _api(e) from None
    audit(db, request, "credit_account.set", "artisan", artisan_id,
          {"prepaid": body.prepaid, "credit_limit": body.credit_limit})
    db.commit()
    return out
