"""Invoices and credit notes: view, PDF, credit note. The rules are the API's (managers see
all; artisans only their own, checked by the policy's ``OwnInvoice``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session as DbSession

from crp_common.i18n import tr

from ..api.deps import Db, Settings
from ..billing import api as billing_api
from ..errors import ApiError
from .forms import Invalid, clean, one_transaction, validate
from .gate import can, page_gate
from .pages import done, refusal_page
from .render import page_lang, render

router = APIRouter(tags=["web pages (HTML)"], default_response_class=HTMLResponse)
CREDIT_RULE = ("POST", "/invoices/{number}/credit-note")


def _invoice_page(request: Request, db: DbSession, who, number: str, errors=None, values=None,  # noqa: ANN001
                  status=200) -> Response:
    lang = page_lang(request)
    try:
        doc = billing_api.get_invoice(number, db)
    except ApiError as e:
        return render(request, "refused.html", status=e.status, who=who, message=e.message(lang))
    return render(request, "invoice.html", status=status, who=who, doc=doc, errors=errors or {},
                  values=values or {}, may_credit=can(who, *CREDIT_RULE) and doc["kind"] == "invoice")


@router.get("/invoices/{number}.pdf")
def invoice_pdf(request: Request, number: str, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    try:
        return billing_api.get_invoice_pdf(number, db, lang)
    except ApiError as e:
        return render(request, "refused.html", status=e.status, who=gate.who, message=e.message(lang))


@router.get("/invoices/{number}")
def invoice_page(request: Request, number: str, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return _invoice_page(request, db, gate.who, number)


@router.post("/invoices/{number}/credit-note")
async def credit_note(request: Request, number: str, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    form = await request.form()
    values = clean(dict(form), ("reason",))
    lines: list[int] = []
    try:
        for raw in form.getlist("line"):
            lines.append(int(str(raw)))
    except ValueError:
        return _invoice_page(request, db, gate.who, number, {"line": tr("web.error.choice", lang)}, values, 422)
    if not values.get("reason"):
        return _invoice_page(request, db, gate.who, number, {"reason": tr("web.error.required", lang)}, values, 422)
    try:
        body = validate(billing_api.CreditNoteIn, {"lines": lines or None, "reason": values["reason"], "lang": lang},
                        lang)
        with one_transaction(db, lang, {"billing.error.nothing_to_credit": "line",
                                        "billing.error.line_already_credited": "line",
                                        "billing.error.unknown_line": "line"}) as tx:
            out = billing_api.credit_note(number, body, tx, request)
    except Invalid as e:
        return _invoice_page(request, db, gate.who, number, e.errors, values, 422)
    return done(request, f"/invoices/{number}", "credited", number=out["number"])
