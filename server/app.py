"""The FastAPI application of the server (system of record)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from .api import gateways, health, registry, reports
from .background import Background
from .db import make_engine, make_sessionmaker
from .errors import install_handlers
from .parts import part_modules
from .settings import ServerSettings


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the app for ``settings`` (from the environment if None). Migrations are not run
    here: :func:`server.__main__.run` (or the caller) runs :func:`server.db.upgrade` first."""
    settings = settings or ServerSettings()
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        bg = Background(app_.state.sessionmaker).start() if settings.background_jobs else None
        yield
        if bg is not None:
            bg.stop()
        engine.dispose()

    app = FastAPI(title="CRP Workshop Tracker", version="1", docs_url="/docs", redoc_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    install_handlers(app)
    for module in (health, registry, gateways, reports):
        app.include_router(module.router)
    part_modules("hooks")
    for module in part_modules("api"):
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)

    return app
