"""Optional parts plug in by convention: their routers are mounted by create_app."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.app import create_app
from server.parts import part_modules


def test_part_routers_are_mounted(server_settings):
    apis = part_modules("api")
    paths = set(create_app(server_settings).openapi()["paths"])
    for module in apis:
        for route in module.router.routes:
            assert route.path in paths, (module.__name__, route.path)


def test_part_modules_skips_missing_modules():
    assert part_modules("no_such_module_anywhere") == []


def test_app_serves_with_parts(server_settings):
    with TestClient(create_app(server_settings)) as c:
        assert c.get("/health").json()["status"] == "ok"
