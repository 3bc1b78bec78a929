"""Shared pieces of the page routes: the refusal pages and the redirect after a form."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from ..security.principal import Principal
from .gate import SESSION_COOKIE, Gate, home_for
from .render import page_lang, remember_lang, render


def refusal_page(request: Request, gate: Gate) -> Response:
    """401: the login page (then back here); 403 and others: a page saying why."""
    e = gate.refusal
    assert e is not None
    lang = page_lang(request)
    if e.status == 401:
        nxt = request.url.path if request.method == "GET" else "/"
        had_credentials = "authorization" in request.headers or request.cookies.get(SESSION_COOKIE)
        response = render(request, "login.html", status=401, next=nxt, message=e.message(lang),
                          errors={"_form": e.message(lang)} if had_credentials else {}, values={})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    who = getattr(request.state, "principal", None)  # known when the role was refused
    return render(request, "refused.html", status=e.status, who=who, message=e.message(lang))


def done(request: Request, url: str, key: str, **params: str) -> Response:
    """After a saved form: see the page again (303) with a confirmation message."""
    q = urlencode({"done": key, **params})
    response = RedirectResponse(f"{url}?{q}", status_code=303)
    remember_lang(request, response)
    return response


def safe_next(value: str | None, who: Principal | None) -> str:
    """Only a path on this site (no //host, no scheme) is followed after the login."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value and value != "/login":
        return quote(value, safe="/?=&-_.")
    return home_for(who)
