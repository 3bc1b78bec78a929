"""API errors: every refusal is a 4xx with a translated message, never a 500.

Raise :class:`ApiError` (or the helpers) from endpoints; :func:`install_handlers` turns it,
request validation errors and database integrity errors into JSON answers in the caller's
language (Accept-Language, French by default)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from crp_common.i18n import normalize_lang, tr

log = logging.getLogger(__name__)


class ApiError(Exception):
    """``key`` is an i18n key; a ``what`` param names an entity key (``entity.<what>``)."""

    def __init__(self, status: int, key: str, headers: dict[str, str] | None = None, **params: Any):
        super().__init__(key)
        self.status = status
        self.key = key
        self.params = params
        self.headers = headers

    def message(self, lang: str) -> str:
        params = dict(self.params)
        if "what" in params:
            params["what"] = tr(f"entity.{params['what']}", lang)
        return tr(self.key, lang, **params)


def not_found(what: str, ident: Any) -> ApiError:
    return ApiError(404, "server.error.not_found_id", what=what, id=ident)


def unknown_ref(what: str, ident: Any) -> ApiError:
    """A body refers to something that does not exist: the input is invalid (422)."""
    return ApiError(422, "server.error.unknown_ref", what=what, id=ident)


def conflict(what: str, ident: Any) -> ApiError:
    return ApiError(409, "server.error.exists", what=what, id=ident)


def invalid(detail: str) -> ApiError:
    return ApiError(422, "error.invalid", detail=detail)


def unauthorized() -> ApiError:
    return ApiError(401, "error.unauthorized", headers={"WWW-Authenticate": "Bearer"})


def request_lang(request: Request) -> str:
    return normalize_lang(request.headers.get("accept-language"))


def _loc(err: dict[str, Any]) -> str:
    return ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"


def _errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in exc.errors()]


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        lang = request_lang(request)
        return JSONResponse({"detail": exc.message(lang), "code": exc.key}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        lang = request_lang(request)
        errs = exc.errors()
        first = errs[0] if errs else {}
        detail = f"{_loc(first)}: {first.get('msg', '')}" if first else ""
        return JSONResponse(
            {"detail": tr("error.invalid", lang, detail=detail), "code": "error.invalid", "errors": _errors(exc)},
            status_code=422,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        lang = request_lang(request)
        log.info("integrity error: %s", exc.orig)
        return JSONResponse(
            {"detail": tr("server.error.integrity", lang), "code": "server.error.integrity"}, status_code=409
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        """The database refused a value (a NUL byte, a number out of range): bad input."""
        lang = request_lang(request)
        detail = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        return JSONResponse(
            {"detail": tr("error.invalid", lang, detail=detail), "code": "error.invalid"}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        lang = request_lang(request)
        if exc.status_code == 404:
            detail = tr("server.error.no_route", lang, path=request.url.path)
        elif exc.status_code == 405:
            detail = tr("server.error.method", lang, method=request.method)
        else:
            detail = str(exc.detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug, not bad input
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": tr("server.error.internal", request_lang(request))}, status_code=500)
