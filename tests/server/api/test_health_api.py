"""GET /health."""

from fastapi.testclient import TestClient

from server.app import create_app


def test_health_reports_database(server_settings):
    with TestClient(create_app(server_settings)) as c:  # open: no token
        r = c.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "db": "ok"}


def test_unknown_route_is_404_in_french_by_default(api):
    r = api.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert "introuvable" in r.json()["detail"]
    r = api.get("/api/v1/nothing-here", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert "No such address" in r.json()["detail"]
