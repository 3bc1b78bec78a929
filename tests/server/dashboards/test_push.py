"""``crp dashboards push`` against a tiny local HTTP server standing in for Grafana's HTTP API
(Grafana itself cannot run here). It records every request so the test checks what a real
Grafana would receive: paths, the bearer token, and the dashboard payloads."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from server.dashboards.cli import app
from server.dashboards.push import PushError, push_dashboards

from .conftest import DASHBOARDS

TOKEN = "glsa_test_token"


class FakeGrafana:
    """Folders, dashboards and datasources by uid, in memory; 401 without the right token."""

    def __init__(self, datasources=("crp-influx", "crp-postgres")):
        self.requests: list[dict] = []
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self.datasources = set(datasources)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                fake.requests.append({"method": method, "path": self.path, "auth": self.headers.get("Authorization"),
                                      "body": body})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._reply(401, {"message": "invalid API key"})
                if method == "GET" and self.path.startswith("/api/folders/"):
                    uid = self.path.rsplit("/", 1)[1]
                    if uid in fake.folders:
                        return self._reply(200, fake.folders[uid])
                    return self._reply(404, {"message": "folder not found"})
                if method == "POST" and self.path == "/api/folders":
                    fake.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"]}
                    return self._reply(200, fake.folders[body["uid"]])
                if method == "POST" and self.path == "/api/dashboards/db":
                    d = body["dashboard"]
                    if body.get("folderUid") not in fake.folders:
                        return self._reply(400, {"message": "folder not found"})
                    version = fake.dashboards.get(d["uid"], {}).get("version", 0) + 1
                    fake.dashboards[d["uid"]] = {"dashboard": d, "version": version}
                    return self._reply(200, {"status": "success", "uid": d["uid"], "version": version,
                                             "url": f"/d/{d['uid']}"})
                if method == "GET" and self.path.startswith("/api/datasources/uid/"):
                    uid = self.path.rsplit("/", 1)[1]
                    if uid in fake.datasources:
                        return self._reply(200, {"uid": uid})
                    return self._reply(404, {"message": "Data source not found"})
                return self._reply(404, {"message": "not found"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def grafana():
    with FakeGrafana() as g:
        yield g


EXPECTED_UIDS = {"crp-overview", "crp-availability", "crp-maintenance", "crp-revenue"}


def test_push_creates_the_folder_and_uploads_every_dashboard(grafana):
    report = push_dashboards(DASHBOARDS, grafana.url, TOKEN)
    assert report.folder_created and report.missing_datasources == []
    assert {d["uid"] for d in report.dashboards} == EXPECTED_UIDS
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in grafana.requests)
    paths = [(r["method"], r["path"]) for r in grafana.requests]
    assert paths[:2] == [("GET", "/api/folders/crp"), ("POST", "/api/folders")]
    assert grafana.requests[1]["body"] == {"title": "CRP", "uid": "crp"}
    posts = [r["body"] for r in grafana.requests if r["path"] == "/api/dashboards/db"]
    assert {p["dashboard"]["uid"] for p in posts} == EXPECTED_UIDS
    for p in posts:
        assert p["overwrite"] is True and p["folderUid"] == "crp"
        assert "id" not in p["dashboard"] and p["dashboard"]["panels"]
    assert {("GET", "/api/datasources/uid/crp-influx"), ("GET", "/api/datasources/uid/crp-postgres")} <= set(paths)


def test_push_again_updates_in_place(grafana):
    push_dashboards(DASHBOARDS, grafana.url, TOKEN)
    report = push_dashboards(DASHBOARDS, grafana.url, TOKEN)
    assert not report.folder_created
    assert sum(r["path"] == "/api/folders" for r in grafana.requests) == 1
    assert {d["version"] for d in report.dashboards} == {2}


def test_push_reports_missing_datasources():
    with FakeGrafana(datasources=("crp-postgres",)) as g:
        r = CliRunner().invoke(app, ["push", "--grafana-url", g.url, "--token", TOKEN, "--dashboards", str(DASHBOARDS),
                                     "--lang", "en"])
    assert r.exit_code == 0, r.output
    assert "crp-influx" in r.output and "does not exist" in r.output
    assert r.output.count("Dashboard pushed") == 4


def test_push_with_a_bad_token_fails_clearly(grafana):
    with pytest.raises(PushError, match="401"):
        push_dashboards(DASHBOARDS, grafana.url, "wrong")
    r = CliRunner().invoke(app, ["push", "--grafana-url", grafana.url, "--token", "wrong",
                                 "--dashboards", str(DASHBOARDS), "--lang", "en"])
    assert r.exit_code == 1 and "Grafana refused" in r.output
    assert not grafana.dashboards


def test_push_refuses_a_bad_url():
    r = CliRunner().invoke(app, ["push", "--grafana-url", "grafana:3000", "--token", TOKEN, "--lang", "en"])
    assert r.exit_code == 2 and "Invalid Grafana URL" in r.output
