"""The manager's pages: artisans (enrol with a badge, qualifications), machines and rate
cards, billing runs, payments, balances, the audit log. Every form calls the API's own
endpoint functions inside :func:`.forms.one_transaction`; every route's rule is in the policy
table."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as FastPath
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from crp_common.i18n import tr

from ..api import registry
from ..api.deps import Db, Settings
from ..billing import api as billing_api
from ..billing import service as billing
from ..billing.errors import BillingError
from ..billing.models import PAYMENT_METHODS
from ..models import Artisan, Badge, Machine, MachineType, Site
from ..security.models import AuditEntry
from ..timeutil import zone
from .forms import FORM, Invalid, clean, one_transaction, validate
from .gate import RowId, page_gate
from .pages import done, refusal_page
from .render import local_time, page_lang, render

router = APIRouter(tags=["web pages (HTML)"], default_response_class=HTMLResponse)
AUDIT_ROWS = 200
UID_KEYS = {"uid": "web.error.uid"}
BadgeUid = Annotated[str, FastPath(min_length=1, max_length=20, pattern=r"^[0-9A-F]+$")]


def _sites(db: DbSession) -> list[Site]:
    return list(db.scalars(select(Site).order_by(Site.code)))


def _site_code(db: DbSession, settings, form: dict) -> str | None:  # noqa: ANN001
    code = str(form.get("site") or "").strip() or settings.default_site
    if not code:
        first = db.scalars(select(Site.code).order_by(Site.code)).first()
        code = first
    return code


def _types(db: DbSession, lang: str) -> list[tuple[str, str]]:
    return [(t.code, t.name_en if lang == "en" else t.name_fr)
            for t in db.scalars(select(MachineType).order_by(MachineType.code))]


def _tz(db: DbSession, settings):  # noqa: ANN001, ANN202
    s = db.get(Site, settings.default_site) if settings.default_site else None
    s = s or db.scalars(select(Site).order_by(Site.code)).first()
    return zone(s.tz if s else None, settings.default_tz)


def _yes_no(lang: str) -> list[tuple[str, str]]:
    return [("true", tr("web.yes", lang)), ("false", tr("web.no", lang))]


# --------------------------------------------------------------------------- artisans


def _artisans_page(request: Request, db: DbSession, who, errors=None, values=None, status=200) -> Response:  # noqa: ANN001
    lang = page_lang(request)
    artisans = list(db.scalars(select(Artisan).order_by(Artisan.name, Artisan.id)))
    from ..models import Badge

    badges: dict[int, list[str]] = {}
    for b in db.scalars(select(Badge).where(Badge.status == "active").order_by(Badge.uid)):
        badges.setdefault(b.artisan, []).append(b.uid)
    return render(request, "manager_artisans.html", status=status, who=who, artisans=artisans, badges=badges,
                  types=[("", "—"), *_types(db, lang)], sites=[(s.code, s.name) for s in _sites(db)],
                  yes_no=_yes_no(lang), errors=errors or {}, values=values or {"member": "true"})


@router.get("/manager/artisans")
def artisans_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return _artisans_page(request, db, gate.who)


@router.post("/manager/artisans")
async def enrol_artisan(request: Request, db: Db, settings: Settings) -> Response:
    """One form, one transaction: the artisan, their badge and (optionally) a qualification."""
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    form = dict(await request.form())
    values = clean(form, ("site", "name", "phone", "trade", "cooperative", "member", "uid", "machine_type",
                          "expires_on"))
    site = _site_code(db, settings, values)
    errors: dict[str, str] = {}
    body = qual = None
    try:
        body = validate(registry.ArtisanIn, {"site": site, **{k: values[k] for k in
                        ("name", "phone", "trade", "cooperative", "member") if k in values}}, lang)
    except Invalid as e:
        errors.update(e.errors)
    if "uid" not in values:
        errors["uid"] = tr("web.error.required", lang)
    else:
        try:
            validate(registry.BadgeIn, {"uid": values["uid"], "artisan_id": 1}, lang, UID_KEYS)
        except Invalid as e:
            errors.update(e.errors)
    if "machine_type" in values or "expires_on" in values:
        try:
            qual = validate(registry.QualificationIn, {"artisan_id": 1, "machine_type": values.get("machine_type"),
                                                       "expires_on": values.get("expires_on")}, lang)
        except Invalid as e:
            errors.update(e.errors)
    if errors:
        return _artisans_page(request, db, gate.who, errors, values, 422)
    try:
        with one_transaction(db, lang, {"server.error.exists": "uid", "server.error.unknown_ref:site": "site",
                                        "server.error.unknown_ref:machine_type": "machine_type"}) as tx:
            a = registry.create_artisan(body, tx)
            registry.create_badge(registry.BadgeIn(uid=values["uid"], artisan_id=a["id"]), tx, request)
            if qual is not None:
                registry.create_qualification(qual.model_copy(update={"artisan_id": a["id"]}), tx)
    except Invalid as e:
        return _artisans_page(request, db, gate.who, e.errors, values, 422)
    return done(request, f"/manager/artisans/{a['id']}", "enrolled")


def _artisan_page(request: Request, db: DbSession, who, artisan_id: int, errors=None, values=None,  # noqa: ANN001
                  status=200) -> Response:
    lang = page_lang(request)
    a = db.get(Artisan, artisan_id)
    if a is None:
        return render(request, "refused.html", status=404, who=who,
                      message=tr("server.error.not_found_id", lang, what=tr("entity.artisan", lang), id=artisan_id))
    out = registry.artisan_out(a, db)
    try:
        bal = billing.balance(db, artisan_id)
    except BillingError:
        bal = None
    return render(request, "manager_artisan.html", status=status, who=who, a=out, balance=bal,
                  types=_types(db, lang), errors=errors or {}, values=values or {})


@router.get("/manager/artisans/{artisan_id}")
def artisan_page(request: Request, artisan_id: RowId, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return _artisan_page(request, db, gate.who, artisan_id)


@router.post("/manager/artisans/{artisan_id}/badges")
async def add_badge(request: Request, artisan_id: RowId, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    values = clean(dict(await request.form()), ("uid",))
    try:
        body = validate(registry.BadgeIn, {"uid": values.get("uid"), "artisan_id": artisan_id}, lang, UID_KEYS)
        with one_transaction(db, lang, {"server.error.exists": "uid"}) as tx:
            registry.create_badge(body, tx, request)
    except Invalid as e:
        return _artisan_page(request, db, gate.who, artisan_id, e.errors, values, 422)
    return done(request, f"/manager/artisans/{artisan_id}", "badge")


@router.post("/manager/artisans/{artisan_id}/badges/{uid}")
async def set_badge_status(request: Request, artisan_id: RowId, uid: BadgeUid, db: Db, settings: Settings) -> Response:
    """Revoke a lost or copied badge (the gateways refuse it at the next snapshot), or reactivate it."""
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    values = clean(dict(await request.form()), ("status",))
    badge = db.get(Badge, uid)
    if badge is None or badge.artisan != artisan_id:
        return _artisan_page(request, db, gate.who, artisan_id, {FORM: tr("web.error.badge_not_theirs", lang, uid=uid)},
                             {}, 404)
    try:
        body = validate(registry.BadgePatch, {"status": values.get("status")}, lang)
        with one_transaction(db, lang) as tx:
            registry.patch_badge(uid, body, tx, request)
    except Invalid as e:
        return _artisan_page(request, db, gate.who, artisan_id, e.errors, {}, 422)
    return done(request, f"/manager/artisans/{artisan_id}", f"badge_{body.status}", number=uid)


@router.post("/manager/artisans/{artisan_id}/qualifications")
async def add_qualification(request: Request, artisan_id: RowId, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    values = clean(dict(await request.form()), ("machine_type", "expires_on"))
    try:
        body = validate(registry.QualificationIn, {"artisan_id": artisan_id, **values}, lang)
        with one_transaction(db, lang, {"server.error.exists": "machine_type",
                                        "server.error.unknown_ref:machine_type": "machine_type"}) as tx:
            registry.create_qualification(body, tx)
    except Invalid as e:
        return _artisan_page(request, db, gate.who, artisan_id, e.errors, values, 422)
    return done(request, f"/manager/artisans/{artisan_id}", "qualification")


# --------------------------------------------------------------------------- machines and rates


def _machines_page(request: Request, db: DbSession, who, errors=None, values=None, status=200) -> Response:  # noqa: ANN001
    lang = page_lang(request)
    machines = list(db.scalars(select(Machine).order_by(Machine.name, Machine.id)))
    cards = [billing.rate_card_dict(r) for r in billing.list_rate_cards(db, None)]
    types = _types(db, lang)
    return render(request, "manager_machines.html", status=status, who=who, machines=machines, cards=cards,
                  types=[("", "—"), *types], type_names=dict(types), machine_names={m.id: m.name for m in machines},
                  machine_options=[("", "—"), *[(m.id, m.name) for m in machines]],
                  errors=errors or {},
                  values=values or {"effective_from": dt.date.today().isoformat(), "increment_minutes": "15"})


@router.get("/manager/machines")
def machines_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return _machines_page(request, db, gate.who)


RATE_FIELDS = ("machine", "machine_type", "price_per_hour_member", "price_per_hour_non_member", "increment_minutes",
               "minimum_minutes", "effective_from", "effective_to", "price_per_kwh")
RATE_ERRORS = {
    "billing.error.price_not_integer": "price_per_hour_member",
    "billing.error.negative_price": "price_per_hour_member",
    "billing.error.price_too_large": "price_per_hour_member",
    "billing.error.bad_increment": "increment_minutes",
    "billing.error.negative_minutes": "minimum_minutes",
    "billing.error.card_scope": "machine_type",
    "billing.error.unknown_machine_type": "machine_type",
    "billing.error.unknown_machine": "machine",
    "billing.error.overlap": "effective_from",
    "billing.error.bad_date": "effective_from",
    "billing.error.dates_reversed": "effective_to",
    # never an error key: lists the field so that refusals naming it (``field=...``) land there
    "field:price_per_hour_non_member": "price_per_hour_non_member",
    "field:price_per_kwh": "price_per_kwh",
}


@router.post("/manager/rates")
async def set_rate(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    values = clean(dict(await request.form()), RATE_FIELDS)
    site = _site_code(db, settings, {})
    data: dict[str, Any] = {"site": site, **values}
    try:
        if "price_per_hour_member" in values and "price_per_hour_non_member" not in values:
            data["price_per_hour_non_member"] = values["price_per_hour_member"]
        body = validate(billing_api.RateCardIn, data, lang)
        with one_transaction(db, lang, RATE_ERRORS) as tx:
            billing_api.create_rate_card(body, tx, settings, request)
    except Invalid as e:
        return _machines_page(request, db, gate.who, e.errors, values, 422)
    return done(request, "/manager/machines", "rate")


# --------------------------------------------------------------------------- billing and invoices


def _billing_page(request: Request, db: DbSession, who, errors=None, values=None, status=200) -> Response:  # noqa: ANN001
    invoices = [billing.invoice_doc(db, i).as_dict() for i in billing.list_invoices(db)]
    invoices.reverse()  # newest first
    last_month = (dt.date.today().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    return render(request, "manager_billing.html", status=status, who=who, invoices=invoices, errors=errors or {},
                  values=values or {"period": last_month})


@router.get("/manager/billing")
def billing_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return _billing_page(request, db, gate.who)


@router.post("/manager/billing")
async def run_billing(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    values = clean(dict(await request.form()), ("period",))
    try:
        body = validate(billing_api.BillingRunIn, {"site": _site_code(db, settings, {}), "lang": lang, **values},
                        lang, {"period": "web.error.period"})
        with one_transaction(db, lang, {"billing.error.bad_period": "period", "billing.error.no_rate_card": "period",
                                        "billing.error.session_open": "period"}) as tx:
            docs = billing_api.run_billing(body, tx, settings, request)
    except Invalid as e:
        return _billing_page(request, db, gate.who, e.errors, values, 422)
    return done(request, "/manager/billing", "billed", count=str(len(docs)))


# --------------------------------------------------------------------------- payments and balances


def _payments_page(request: Request, db: DbSession, who, errors=None, values=None, status=200) -> Response:  # noqa: ANN001
    lang = page_lang(request)
    payments = [billing.payment_dict(p) for p in billing.list_payments(db, None, None)]
    payments.reverse()
    artisans = list(db.scalars(select(Artisan).order_by(Artisan.name, Artisan.id)))
    names = {a.id: a.name for a in artisans}
    tz = _tz(db, request.app.state.settings)
    return render(request, "manager_payments.html", status=status, who=who, payments=payments, names=names,
                  when=lambda t: local_time(t, tz),
                  artisan_options=[("", "—"), *[(str(a.id), f"{a.name} (#{a.id})") for a in artisans]],
                  methods=[(m, tr(f"web.method.{m}", lang)) for m in PAYMENT_METHODS],
                  errors=errors or {}, values=values or {"currency": "XOF", "method": "cash"})


@router.get("/manager/payments")
def payments_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return _payments_page(request, db, gate.who)


@router.post("/manager/payments")
async def record_payment(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    lang = page_lang(request)
    values = clean(dict(await request.form()), ("artisan", "amount", "currency", "method", "reference"))
    errors: dict[str, str] = {}
    if "artisan" not in values:
        errors["artisan"] = tr("web.error.required", lang)
    if values.get("method", "cash") != "cash" and not values.get("reference"):
        errors["reference"] = tr("web.error.reference", lang)
    try:
        body = validate(billing_api.PaymentIn, {**values, "site": _site_code(db, settings, {})}, lang)
    except Invalid as e:
        errors = {**e.errors, **errors}
    if errors:
        return _payments_page(request, db, gate.who, errors, values, 422)
    try:
        with one_transaction(db, lang, {"billing.error.bad_amount": "amount", "billing.error.payment_currency": "currency",
                                        "billing.error.reference_required": "reference",
                                        "billing.error.unknown_artisan": "artisan",
                                        "billing.error.payer_required": "artisan",
                                        "billing.error.bad_method": "method"}) as tx:
            billing_api.create_payment(body, tx, request)
    except Invalid as e:
        return _payments_page(request, db, gate.who, e.errors, values, 422)
    return done(request, "/manager/payments", "paid")


@router.get("/manager/balances")
def balances_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    rows = []
    for a in db.scalars(select(Artisan).order_by(Artisan.name, Artisan.id)):
        try:
            rows.append((a, billing.balance(db, a.id)))
        except BillingError:
            rows.append((a, None))
    return render(request, "manager_balances.html", who=gate.who, rows=rows)


@router.get("/manager/audit")
def audit_page(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    entries = list(db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(AUDIT_ROWS)))
    tz = _tz(db, settings)
    return render(request, "manager_audit.html", who=gate.who, entries=entries, when=lambda t: local_time(t, tz))
