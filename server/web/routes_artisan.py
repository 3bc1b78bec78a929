"""The artisan's page: my sessions with billed minutes and amounts, my balance, my invoices.
Only ever the caller's own records (their artisan id comes from their token)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from crp_common.i18n import tr

from ..api.deps import Db, Settings, check_artisan_access
from ..billing import service as billing
from ..billing.errors import BillingError
from ..billing.models import InvoiceLine
from ..models import Artisan, Machine
from ..reports import Filters, list_sessions
from .gate import page_gate
from .pages import refusal_page
from .render import page_lang, render

router = APIRouter(tags=["web pages (HTML)"], default_response_class=HTMLResponse)
SESSIONS_SHOWN = 200


@router.get("/me")
def my_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    who = gate.who
    lang = page_lang(request)
    me = who.artisan_id if who else None
    artisan = db.get(Artisan, me) if me is not None else None
    if artisan is None:
        return render(request, "refused.html", status=403, who=who, message=tr("security.error.not_own", lang))
    check_artisan_access(request, db, who, artisan.id)
    sessions = list_sessions(db, Filters(artisan=artisan.id), settings.default_tz)[-SESSIONS_SHOWN:]
    sessions.reverse()  # newest first
    ids = [s["id"] for s in sessions]
    billed = {ln.session_id: ln for ln in db.scalars(select(InvoiceLine).where(InvoiceLine.session_id.in_(ids)))} \
        if ids else {}
    try:
        balance = billing.balance(db, artisan.id)
    except BillingError:
        balance = None
    invoices = [billing.invoice_doc(db, i).as_dict() for i in billing.list_invoices(db, artisan=artisan.id)]
    invoices.reverse()
    return render(request, "me.html", who=who, artisan=artisan, sessions=sessions, billed=billed,
                  balance=balance, invoices=invoices, names={m.id: m.name for m in db.scalars(select(Machine))})
