"""The web pages' router, mounted by :func:`server.app.create_app` like every part's API.

Pages: ``/login`` ``/logout`` ``/`` (home of the role), ``/board`` (kiosk), ``/manager/...``,
``/tech/...``, ``/me``, ``/invoices/{number}`` (+ ``.pdf``, credit note). Each route has its
rule in server/security/policy.py (the page rules reuse the API's)."""

from __future__ import annotations

from fastapi import APIRouter

from . import routes_artisan, routes_auth, routes_board, routes_invoices, routes_manager, routes_technician

router = APIRouter()
for _module in (routes_auth, routes_board, routes_manager, routes_invoices, routes_technician, routes_artisan):
    router.routes.extend(_module.router.routes)  # flat: create_app mounts this router's routes
