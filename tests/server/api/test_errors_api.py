"""No input makes the API answer 500: every route gets junk bodies, junk path parameters and
junk query strings, with valid credentials, and must answer with a 2xx/3xx/4xx and a message."""

from __future__ import annotations

import re

import pytest

JUNK_BODIES = [None, [], "x", 0, {"a": 1}, {"id": None, "site": 7, "uid": [], "events": "no"}, {"status": "\x00"}]
JUNK_PARAMS = ["0", "-1", "9" * 30, "ÿ%00", "ZZZZZZZZZ", "a" * 300]
JUNK_QUERY = {"site": "\x00", "from": "2026-02-30", "to": "x", "artisan": "-5", "machine": "é" * 60, "limit": "99999999"}


def _routes(api):
    spec = api.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method in ops:
            yield method.upper(), path


def test_junk_never_gives_500(api, workshop):
    headers = {"X-API-Key": workshop.api_key}
    seen = 0
    for method, path in _routes(api):
        for param in JUNK_PARAMS:
            url = re.sub(r"\{[^}]+\}", param, path)
            bodies = JUNK_BODIES if method in ("POST", "PATCH", "PUT") else [None]
            for body in bodies:
                r = api.request(method, url, json=body, params=JUNK_QUERY if method == "GET" else None, headers=headers)
                seen += 1
                assert r.status_code < 500, (method, url, body, r.status_code, r.text)
                if r.status_code >= 400:
                    assert r.json()["detail"], (method, url)
            if "{" not in path:
                break
    assert seen > 100


@pytest.mark.parametrize("lang, text", [("fr", "Données invalides"), ("en", "Invalid data"), ("de", "Données invalides")])
def test_messages_follow_accept_language(api, workshop, lang, text):
    r = api.post("/api/v1/sites", json={"code": "x"}, headers={"Accept-Language": lang})
    assert r.status_code == 422 and r.json()["detail"].startswith(text)
