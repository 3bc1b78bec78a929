"""Log in (the API's login logic, then an HttpOnly cookie holding the JWT), log out, home."""

from __future__ import annotations

from fastapi import APIRouter, Request

from crp_common.i18n import tr
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.deps import Db, Settings
from ..errors import ApiError
from ..models import utcnow
from ..security.api import client_ip
from ..security.login import login
from ..security.principal import Principal
from .forms import FORM
from .gate import SESSION_COOKIE, home_for, page_gate
from .pages import refusal_page, safe_next
from .render import page_lang, remember_lang, render

router = APIRouter(tags=["web pages (HTML)"], default_response_class=HTMLResponse)
MAX_FIELD_CHARS = 256


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:  # noqa: A002
    return render(request, "login.html", next=next or "", errors={}, values={})


@router.post("/login")
async def login_submit(request: Request, db: Db, settings: Settings) -> Response:
    lang = page_lang(request)
    form = await request.form()
    username = str(form.get("username") or "").strip()[:MAX_FIELD_CHARS]
    password = str(form.get("password") or "")[:MAX_FIELD_CHARS]
    nxt = str(form.get("next") or "")
    errors = {}
    status = 422
    if not username:
        errors["username"] = _req(lang)
    if not password:
        errors["password"] = _req(lang)
    if not errors:
        try:
            out = login(db, settings, username, password, client_ip(request), utcnow())
        except ApiError as e:  # bad credentials 401, too many attempts 429
            errors[FORM] = e.message(lang)
            status = e.status
        else:
            who = Principal(kind="user", name=out.user.username, role=out.user.role, user_id=out.user.id,
                            artisan_id=out.user.artisan_id, site=out.user.site)
            response = RedirectResponse(safe_next(nxt, who), status_code=303)
            response.set_cookie(SESSION_COOKIE, out.token, max_age=out.expires_in, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https", path="/")
            remember_lang(request, response)
            return response
    return render(request, "login.html", status=status, next=nxt, errors=errors,
                  values={"username": username})


def _req(lang: str) -> str:
    return tr("web.error.required", lang)


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    remember_lang(request, response)
    return response


@router.get("/")
def home(request: Request, db: Db, settings: Settings) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return RedirectResponse(home_for(gate.who), status_code=303)
