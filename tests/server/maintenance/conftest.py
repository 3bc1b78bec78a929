"""Maintenance fixtures. The server's ``api`` fixture (tests/server/conftest.py) builds the app
with create_app, which mounts server.maintenance.api and imports server.maintenance.hooks
(ingest hook, snapshot conditions); ``sm`` opens sessions on the same database."""

from __future__ import annotations

import pytest

from server.db import make_engine, make_sessionmaker


@pytest.fixture
def sm(migrated_url):
    engine = make_engine(migrated_url)
    yield make_sessionmaker(engine)
    engine.dispose()
