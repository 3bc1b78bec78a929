"""The workshop board: a kiosk page, one large tile per machine, refreshing itself every few
seconds by fetching the tiles partial. Open on the LAN (see docs/web.md)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from ..api.deps import Db, Settings
from ..maintenance.models import Alert
from ..models import Artisan, Machine, MachineStateChange, Session, Site
from ..timeutil import zone
from .board_view import Tile, make_tile
from .gate import page_gate
from .pages import refusal_page
from .render import local_time, render

router = APIRouter(tags=["web pages (HTML)"], default_response_class=HTMLResponse)
REFRESH_S = 3  # how often the board fetches its tiles
SiteQ = Query(default=None, max_length=8, pattern=r"^[A-Z0-9]{2,8}$")


def _last_states(db: DbSession, ids: list[str]) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    if not ids:
        return out
    q = (select(MachineStateChange.machine, MachineStateChange.state, MachineStateChange.t_ms)
         .where(MachineStateChange.machine.in_(ids))
         .order_by(MachineStateChange.t_ms, MachineStateChange.id))
    for machine, state, t_ms in db.execute(q):
        out[machine] = (state, t_ms)  # the last row wins
    return out


def board_tiles(db: DbSession, site: str | None) -> list[Tile]:
    q = select(Machine).order_by(Machine.name, Machine.id)
    if site is not None:
        q = q.where(Machine.site == site)
    machines = list(db.scalars(q))
    ids = [m.id for m in machines]
    states = _last_states(db, ids)
    sessions: dict[str, tuple[str | None, int]] = {}
    if ids:
        sq = (select(Session.machine, Artisan.name, Session.start_ms)
              .outerjoin(Artisan, Artisan.id == Session.artisan)
              .where(Session.open.is_(True), Session.machine.in_(ids)).order_by(Session.start_ms))
        for machine, name, start_ms in db.execute(sq):
            sessions[machine] = (name, start_ms)
    faulted = set(db.scalars(select(Alert.machine).where(Alert.kind == "fault", Alert.state != "resolved",
                                                      Alert.machine.in_(ids)))) if ids else set()
    tiles = []
    for m in machines:
        state, t_ms = states.get(m.id, (None, None))
        name, start = sessions.get(m.id, (None, None))
        tiles.append(make_tile(m.id, m.name, state, t_ms, m.locked, m.lock_reason, name, start,
                               fault_alert=m.id in faulted))
    return tiles


def _zone(db: DbSession, settings, site: str | None):  # noqa: ANN001, ANN202
    code = site or settings.default_site
    s = db.get(Site, code) if code else None
    if s is None:
        s = db.scalars(select(Site).order_by(Site.code)).first()
    return zone(s.tz if s else None, settings.default_tz)


def _context(db: DbSession, settings, site: str | None) -> dict:  # noqa: ANN001
    tz = _zone(db, settings, site)
    return {"tiles": board_tiles(db, site), "since": lambda ms: local_time(ms, tz, with_date=False),
            "refresh_s": REFRESH_S, "site": site or ""}


@router.get("/board")
def board(request: Request, db: Db, settings: Settings, site: str | None = SiteQ) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return render(request, "board.html", who=gate.who, **_context(db, settings, site))


@router.get("/board/tiles")
def board_tiles_partial(request: Request, db: Db, settings: Settings, site: str | None = SiteQ) -> Response:
    gate = page_gate(request, db, settings)
    if gate.refused:
        return refusal_page(request, gate)
    return render(request, "_tiles.html", **_context(db, settings, site))
