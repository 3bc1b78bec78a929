"""Gateway endpoints: POST /ingest (plain and gzip) and GET /gateway/snapshot with ETag."""

from __future__ import annotations

import datetime as dt
import gzip
import json

T0 = int(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)  # a Monday
MIN = 60_000


def gw_headers(workshop, **extra):
    return {"X-API-Key": workshop.api_key, **extra}


def test_ingest_json_and_gzip(api, workshop, events):
    sid = events.tap_in("bandsaw-1", "node-bs1", 1, "04A1B2C3", workshop.artisans["Awa Diop"], T0)
    events.close("bandsaw-1", sid, "tap_out", T0 + 5 * MIN)
    batch = events.batch()
    r = api.post("/api/v1/ingest", json=batch, headers=gw_headers(workshop))
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": len(events.events), "duplicates": 0, "rejected": []}
    body = gzip.compress(json.dumps(batch).encode())
    r = api.post(
        "/api/v1/ingest",
        content=body,
        headers=gw_headers(workshop, **{"Content-Encoding": "gzip", "Content-Type": "application/json"}),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 0, "duplicates": len(events.events), "rejected": []}
    rows = api.get("/api/v1/sessions").json()
    assert [(s["id"], s["end_reason"]) for s in rows] == [(sid, "tap_out")]
    assert api.get("/api/v1/gateways").json()[0]["last_seen"] is not None


def test_ingest_rejects_one_bad_event_not_the_batch(api, workshop, events):
    events.node("bandsaw-1", "node-bs1", 1, "hb", T0, relay=False, motor=False)
    batch = events.batch()
    batch["events"].append({**batch["events"][0], "seq": 9, "site": "ABJ"})
    r = api.post("/api/v1/ingest", json=batch, headers=gw_headers(workshop))
    assert r.status_code == 200
    assert r.json() == {"accepted": 1, "duplicates": 0, "rejected": [{"index": 1, "reason": "wrong_site"}]}
    letters = api.get("/api/v1/dead-letters").json()
    assert [(d["reason"], d["gateway"]) for d in letters] == [("wrong_site", "gw-dkr")]


def test_ingest_bad_requests_are_4xx(api, workshop, events):
    events.node("bandsaw-1", "node-bs1", 1, "hb", T0, relay=False, motor=False)
    batch = events.batch()
    h = gw_headers(workshop)
    assert api.post("/api/v1/ingest", json=batch).status_code == 401
    assert api.post("/api/v1/ingest", json=batch, headers={"X-API-Key": "wrong"}).status_code == 401
    r = api.post("/api/v1/ingest", content=b"\x1f\x8bnot really gzip", headers={**h, "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["detail"]
    r = api.post("/api/v1/ingest", content=b"{", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422
    r = api.post("/api/v1/ingest", content=b"{}", headers={**h, "Content-Encoding": "br"})
    assert r.status_code == 415
    r = api.post("/api/v1/ingest", json={"gateway": "gw-dkr"}, headers=h)
    assert r.status_code == 422 and "site" in r.json()["detail"]
    r = api.post("/api/v1/ingest", json={**batch, "events": ["x"]}, headers=h)
    assert r.status_code == 422
    r = api.post("/api/v1/ingest", json={**batch, "gateway": "gw-other"}, headers=h)
    assert r.status_code == 403 and "gw-other" in r.json()["detail"]
    # nothing was stored by any of these
    assert api.get("/api/v1/summary").json()["events"] == 0


def test_snapshot_content(api, workshop):
    api.patch("/api/v1/machines/lathe-2", json={"locked": True, "lock_reason": "maintenance"})
    api.post("/api/v1/qualifications", json={"artisan_id": workshop.artisans["Moussa Ndiaye"], "machine_type": "lathe", "expires_on": "2026-12-31"})
    api.patch("/api/v1/badges/04112233445566", json={"status": "revoked"})
    r = api.get("/api/v1/gateway/snapshot", headers=gw_headers(workshop))
    assert r.status_code == 200
    snap = r.json()
    assert r.headers["etag"] == f'"{snap["version"]}"'
    assert snap["site"] == {"code": "DKR", "name": "CRP Dakar", "tz": "Africa/Dakar", "currency": "XOF", "locale": "fr"}
    machines = {m["id"]: m for m in snap["machines"]}
    expected = {
        "id": "bandsaw-1", "type": "bandsaw", "node": "node-bs1", "name": "Scie 1",
        "locked": False, "lock_reason": None, "idle_timeout_s": 600,
    }
    assert {k: machines["bandsaw-1"][k] for k in expected} == expected
    assert machines["lathe-1"]["idle_timeout_s"] == 900
    assert machines["lathe-2"]["locked"] is True and machines["lathe-2"]["node"] is None
    badges = {b["uid"]: b for b in snap["badges"]}
    assert badges["04112233445566"]["status"] == "revoked"
    assert badges["04A1B2C3"] == {"uid": "04A1B2C3", "artisan": workshop.artisans["Awa Diop"], "status": "active"}
    artisans = {a["name"]: a for a in snap["artisans"]}
    assert [q["type"] for q in artisans["Awa Diop"]["qualifications"]] == ["bandsaw", "lathe"]
    moussa = artisans["Moussa Ndiaye"]["qualifications"]
    assert {q["type"]: q["expires"] for q in moussa} == {"bandsaw": None, "lathe": "2026-12-31"}


def test_snapshot_etag_changes_only_with_content(api, workshop):
    h = gw_headers(workshop)
    first = api.get("/api/v1/gateway/snapshot", headers=h)
    etag = first.headers["etag"]
    again = api.get("/api/v1/gateway/snapshot", headers=h)
    assert again.headers["etag"] == etag  # generated_at moved, the version did not
    r = api.get("/api/v1/gateway/snapshot", headers={**h, "If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    api.patch(f"/api/v1/artisans/{workshop.artisans['Awa Diop']}", json={"status": "suspended"})
    r = api.get("/api/v1/gateway/snapshot", headers={**h, "If-None-Match": etag})
    assert r.status_code == 200 and r.headers["etag"] != etag
    assert {a["name"]: a["status"] for a in r.json()["artisans"]}["Awa Diop"] == "suspended"
    # back to the same content: back to the same version
    api.patch(f"/api/v1/artisans/{workshop.artisans['Awa Diop']}", json={"status": "active"})
    assert api.get("/api/v1/gateway/snapshot", headers=h).headers["etag"] == etag


def test_snapshot_is_per_site(api, workshop):
    api.post("/api/v1/sites", json={"code": "ABJ", "name": "CRP Abidjan", "tz": "Africa/Abidjan", "currency": "XOF"})
    api.post("/api/v1/machines", json={"id": "saw-abj", "site": "ABJ", "type": "bandsaw", "name": "Scie"})
    key = api.post("/api/v1/gateways", json={"id": "gw-abj", "site": "ABJ"}).json()["api_key"]
    snap = api.get("/api/v1/gateway/snapshot", headers={"X-API-Key": key}).json()
    assert snap["site"]["code"] == "ABJ"
    assert [m["id"] for m in snap["machines"]] == ["saw-abj"]
    assert snap["badges"] == [] and snap["artisans"] == []
    mine = api.get("/api/v1/gateway/snapshot", headers=gw_headers(workshop)).json()
    assert "saw-abj" not in {m["id"] for m in mine["machines"]}
