"""Render pages: the Jinja2 environment, the reader's language (``?lang=`` then the ``lang``
cookie, French by default), and the formats people read (money, site-local times)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from crp_common.i18n import DEFAULT_LANG, LANGUAGES, tr

from ..security.principal import Principal
from ..timeutil import ms_to_utc
from .gate import can

TEMPLATES = Path(__file__).parent / "templates"
LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def page_lang(request: Request) -> str:
    for value in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if value in LANGUAGES:
            return value
    return DEFAULT_LANG


def money(amount: int | None, currency: str = "XOF") -> str:
    """Integer minor units; CFA francs have no decimals. Thin spaces between thousands."""
    if amount is None:
        return ""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(int(amount)):,}".replace(",", "\u202f") + f" {currency}"


def local_time(value: Any, tz: dt.tzinfo, with_date: bool = True) -> str:
    """An epoch-ms, an aware datetime or an ISO string, shown in the site's local time."""
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        t = ms_to_utc(value)
    elif isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        t = value
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    t = t.astimezone(tz)
    return t.strftime("%d/%m/%Y %H:%M") if with_date else t.strftime("%H:%M")


def as_written(value: str | None) -> str:
    """An ISO time already in site-local time (``*_local`` fields), as people read it."""
    if not value:
        return ""
    try:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return t.strftime("%d/%m/%Y %H:%M")


_env.filters["local"] = as_written


def nav_links(who: Principal | None) -> list[tuple[str, str]]:
    """The pages the caller's role may open (by the policy table), as (href, i18n key)."""
    links = [
        ("/manager/artisans", "web.nav.artisans"),
        ("/manager/machines", "web.nav.machines"),
        ("/manager/billing", "web.nav.billing"),
        ("/manager/payments", "web.nav.payments"),
        ("/manager/balances", "web.nav.balances"),
        ("/manager/audit", "web.nav.audit"),
        ("/tech/alerts", "web.nav.alerts"),
        ("/tech/work-orders", "web.nav.work_orders"),
        ("/tech/machines", "web.nav.locks"),
        ("/tech/due", "web.nav.due"),
        ("/me", "web.nav.me"),
        ("/board", "web.nav.board"),
    ]
    return [(href, key) for href, key in links if can(who, "GET", href)]


def lang_url(request: Request, lang: str) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", lang)]
    return f"{request.url.path}?{urlencode(params)}"


def wants_html(request: Request) -> bool:
    """A browser asks for HTML; a program (curl, an API client) gets the API's JSON errors."""
    return "text/html" in request.headers.get("accept", "")


def render(request: Request, template: str, status: int = 200, who: Principal | None = None,
           **context: Any) -> Response:
    lang = page_lang(request)
    if status >= 400 and not wants_html(request):
        errors = context.get("errors") or {}
        detail = context.get("message") or next(iter(errors.values()), None) or tr("error.invalid", lang)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=status)

    def t(key: str, **params: Any) -> str:
        return tr(key, lang, **params)

    html = _env.get_template(template).render(
        request=request, lang=lang, t=t, who=who, nav=nav_links(who) if who else [], money=money,
        other_langs=[(code, lang_url(request, code)) for code in LANGUAGES if code != lang],
        path=request.url.path, **context)
    response = HTMLResponse(html, status_code=status)
    remember_lang(request, response)
    return response


def remember_lang(request: Request, response: Any) -> None:
    """``?lang=en`` is remembered in the ``lang`` cookie for the next pages."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES and asked != request.cookies.get(LANG_COOKIE):
        response.set_cookie(LANG_COOKIE, asked, max_age=LANG_COOKIE_MAX_AGE_S, samesite="lax", path="/")
