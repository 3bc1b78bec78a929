"""Registry endpoints: create/read/update, and every kind of bad input is a 4xx with a message."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.app import create_app


def test_registered_workshop_reads_back(api, workshop):
    sites = api.get("/api/v1/sites").json()
    assert sites == [{"code": "DKR", "name": "CRP Dakar", "tz": "Africa/Dakar", "currency": "XOF", "locale": "fr"}]
    types = {t["code"]: t for t in api.get("/api/v1/machine-types").json()}
    assert types["bandsaw"]["idle_timeout_s"] == 600 and types["lathe"]["idle_timeout_s"] == 900
    machines = api.get("/api/v1/machines", params={"site": "DKR"}).json()
    assert [m["id"] for m in machines] == ["bandsaw-1", "lathe-1", "lathe-2"]
    assert machines[0]["node_id"] == "node-bs1" and machines[0]["locked"] is False
    awa = api.get(f"/api/v1/artisans/{workshop.artisans['Awa Diop']}").json()
    assert awa["name"] == "Awa Diop" and awa["status"] == "active" and awa["credit_blocked"] is False
    assert [b["uid"] for b in awa["badges"]] == ["04A1B2C3"]
    assert [q["machine_type"] for q in awa["qualifications"]] == ["bandsaw", "lathe"]
    assert len(api.get("/api/v1/artisans").json()) == 3
    gws = api.get("/api/v1/gateways").json()
    assert gws == [{"id": "gw-dkr", "site": "DKR", "last_seen": None}]  # never the key


def test_patch_machine_lock_and_unlock(api, workshop):
    r = api.patch("/api/v1/machines/lathe-1", json={"locked": True, "lock_reason": "courroie"})
    assert r.status_code == 200 and r.json()["locked"] is True and r.json()["lock_reason"] == "courroie"
    r = api.patch("/api/v1/machines/lathe-1", json={"locked": False})
    assert r.json()["locked"] is False and r.json()["lock_reason"] is None
    r = api.patch("/api/v1/machines/lathe-2", json={"node_id": "node-lt2", "name": "Tour deux"})
    assert r.json()["node_id"] == "node-lt2" and r.json()["name"] == "Tour deux"
    # a node can drive one machine only
    r = api.patch("/api/v1/machines/lathe-2", json={"node_id": "node-lt1"})
    assert r.status_code == 409 and "node-lt1" in r.json()["detail"]


def test_patch_artisan_and_badge(api, workshop):
    aid = workshop.artisans["Moussa Ndiaye"]
    r = api.patch(f"/api/v1/artisans/{aid}", json={"status": "suspended", "credit_blocked": True, "phone": "+221 77 000 00 00"})
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["credit_blocked"], r.json()["phone"]) == ("suspended", True, "+221 77 000 00 00")
    r = api.patch("/api/v1/badges/04d4e5f6", json={"status": "revoked"})  # lower case is normalised
    assert r.status_code == 200 and r.json()["status"] == "revoked"


def test_badge_uid_is_normalised(api, workshop):
    aid = workshop.artisans["Fatou Sow"]
    r = api.post("/api/v1/badges", json={"uid": "de:ad:be:ef", "artisan_id": aid})
    assert r.status_code == 201 and r.json()["uid"] == "DEADBEEF"
    r = api.post("/api/v1/badges", json={"uid": "DEADBEEF", "artisan_id": aid})
    assert r.status_code == 409 and "DEADBEEF" in r.json()["detail"]


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("/api/v1/badges", {"uid": "12345", "artisan_id": 1}, 422, "uid"),
        ("/api/v1/badges", {"uid": "ZZZZZZZZ", "artisan_id": 1}, 422, "uid"),
        ("/api/v1/badges", {"uid": 1234, "artisan_id": 1}, 422, "uid"),
        ("/api/v1/badges", {"uid": "CAFEBABE", "artisan_id": 999}, 422, "999"),
        ("/api/v1/badges", {"uid": "CAFEBABE", "artisan_id": 10**12}, 422, "artisan_id"),
        ("/api/v1/badges", {"uid": "CAFEBABE"}, 422, "artisan_id"),
        ("/api/v1/sites", {"code": "dkr", "name": "x"}, 422, "code"),
        ("/api/v1/sites", {"code": "ABJ", "name": "x", "tz": "Mars/Olympus"}, 422, "tz"),
        ("/api/v1/sites", {"code": "DKR", "name": "again"}, 409, "DKR"),
        ("/api/v1/machine-types", {"code": "bandsaw", "name_fr": "a", "name_en": "b"}, 409, "bandsaw"),
        ("/api/v1/machine-types", {"code": "x", "name_fr": "a", "name_en": "b", "idle_timeout_s": 1}, 422, "idle_timeout_s"),
        ("/api/v1/machines", {"id": "m-1", "site": "ZZZ", "type": "lathe", "name": "M"}, 422, "ZZZ"),
        ("/api/v1/machines", {"id": "m-1", "site": "DKR", "type": "kiln", "name": "M"}, 422, "kiln"),
        ("/api/v1/machines", {"id": "bandsaw-1", "site": "DKR", "type": "lathe", "name": "M"}, 409, "bandsaw-1"),
        ("/api/v1/machines", {"id": "Bad Id", "site": "DKR", "type": "lathe", "name": "M"}, 422, "id"),
        ("/api/v1/machines", {"id": "m-2", "site": "DKR", "type": "lathe", "name": "M", "node_id": "node-bs1"}, 409, "node-bs1"),
        ("/api/v1/artisans", {"site": "DKR", "name": ""}, 422, "name"),
        ("/api/v1/artisans", {"site": "DKR", "name": "X", "status": "gone"}, 422, "status"),
        ("/api/v1/artisans", {"site": "DKR", "name": "X", "phone": "call me"}, 422, "phone"),
        ("/api/v1/artisans", {"site": "DKR", "name": "X", "surprise": 1}, 422, "surprise"),
        ("/api/v1/qualifications", {"artisan_id": 999, "machine_type": "lathe"}, 422, "999"),
        ("/api/v1/qualifications", {"artisan_id": 1, "machine_type": "kiln"}, 422, "kiln"),
        ("/api/v1/qualifications", {"artisan_id": 1, "machine_type": "lathe", "expires_on": "soon"}, 422, "expires_on"),
        ("/api/v1/gateways", {"id": "gw-x", "site": "ZZZ"}, 422, "ZZZ"),
        ("/api/v1/gateways", {"id": "gw-dkr", "site": "DKR"}, 409, "gw-dkr"),
    ],
)
def test_bad_input_is_a_clear_4xx(api, workshop, path, body, status, words):
    r = api.post(path, json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_duplicate_qualification_is_409(api, workshop):
    aid = workshop.artisans["Awa Diop"]
    r = api.post("/api/v1/qualifications", json={"artisan_id": aid, "machine_type": "lathe"})
    assert r.status_code == 409
    assert r.json()["detail"].startswith("Habilitation")  # French by default


def test_malformed_json_and_wrong_types_are_422(api, workshop):
    r = api.post("/api/v1/sites", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("Données invalides")
    r = api.post("/api/v1/sites", json=[1, 2, 3])
    assert r.status_code == 422
    r = api.patch("/api/v1/machines/bandsaw-1", json={"locked": "maybe"})
    assert r.status_code == 422
    r = api.get("/api/v1/artisans/abc")
    assert r.status_code == 422
    r = api.get("/api/v1/artisans/99999999999999999999")
    assert r.status_code == 422


def test_not_found_is_404_with_message(api, workshop):
    for method, path, body in (
        ("GET", "/api/v1/artisans/4242", None),
        ("PATCH", "/api/v1/artisans/4242", {"name": "x"}),
        ("GET", "/api/v1/machines/nope", None),
        ("PATCH", "/api/v1/machines/nope", {"name": "x"}),
        ("PATCH", "/api/v1/badges/CAFEBABE", {"status": "revoked"}),
        ("PATCH", "/api/v1/badges/not-a-uid", {"status": "revoked"}),
    ):
        r = api.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert "introuvable" in r.json()["detail"]
    r = api.get("/api/v1/artisans/4242", headers={"Accept-Language": "en"})
    assert r.json()["detail"] == "Artisan 4242 not found"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}])
def test_wrong_or_missing_token_is_401(server_settings, headers):
    with TestClient(create_app(server_settings)) as c:
        for method, path in (("GET", "/api/v1/sites"), ("POST", "/api/v1/sites"), ("GET", "/api/v1/summary"), ("GET", "/api/v1/sessions")):
            r = c.request(method, path, headers=headers, json={"code": "ABJ", "name": "Abidjan"})
            assert r.status_code == 401, (method, path)
            assert r.json()["detail"] == "Clé d'API ou jeton manquant ou invalide"
        assert c.get("/api/v1/sites", headers={"Authorization": "Bearer test-admin-token"}).status_code == 200


def test_gateway_key_is_shown_once_and_stored_hashed(api, workshop, db_session):
    from server.models import Gateway

    gw = db_session.get(Gateway, "gw-dkr")
    assert workshop.api_key not in gw.api_key_hash and len(gw.api_key_hash) == 64
    assert len(workshop.api_key) >= 32


def test_admin_token_does_not_open_gateway_endpoints(api, workshop):
    assert api.get("/api/v1/gateway/snapshot").status_code == 401
    assert api.get("/api/v1/gateway/snapshot", headers={"X-API-Key": "nope"}).status_code == 401
