"""Backends against a tiny local HTTP receiver.

InfluxDB 2.x cannot run here, so a small http.server STANDS IN for its ``/api/v2/write``
endpoint: these tests check the request the v2 backend builds (path, org, bucket, precision,
token, body) and how each answer is classified. The v1 backend's real-server behaviour is in
test_telemetry_writer.py against Debian's influxd.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crp_common.events import Event
from server.telemetry import writer as writer_mod
from server.telemetry.backends import V1Backend, V2Backend, WriteFailed, WriteRefused
from server.telemetry.spool import Spool
from server.telemetry.writer import TelemetryWriter

T0 = 1_718_000_000_000
LINES = [f"machine_temp,machine=bandsaw-1,site=DKR c=40.5 {T0}",
         f"machine_temp,machine=bandsaw-1,site=DKR c=41.0 {T0 + 1000}"]
FLUSH_S = 30.0


class Receiver:
    """Records each request; answers with ``status`` (and ``body``), settable per test."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 204
        self.body = b""
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                n = int(self.headers.get("Content-Length") or 0)
                u = urllib.parse.urlsplit(self.path)
                recv.requests.append({"path": u.path, "query": dict(urllib.parse.parse_qsl(u.query)),
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": self.rfile.read(n).decode(), "status": recv.status})
                self.send_response(recv.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(recv.body)))
                self.end_headers()
                self.wfile.write(recv.body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def fast_timing(monkeypatch):
    monkeypatch.setattr(writer_mod, "RETRY_INITIAL_S", 0.02)
    monkeypatch.setattr(writer_mod, "RETRY_MAX_S", 0.1)
    monkeypatch.setattr(writer_mod, "FLUSH_INTERVAL_S", 0.05)


def test_v2_request_shape(receiver):
    b = V2Backend(receiver.url, "t0ken-not-secret", "crp-org", "crp-bucket")
    try:
        b.write(LINES)
    finally:
        b.close()
    [req] = receiver.requests
    assert req["path"] == "/api/v2/write"
    assert req["query"] == {"org": "crp-org", "bucket": "crp-bucket", "precision": "ms"}
    assert req["headers"]["authorization"] == "Token t0ken-not-secret"
    assert req["body"].splitlines() == LINES


@pytest.mark.parametrize("status,err", [(400, WriteRefused), (413, WriteRefused), (422, WriteRefused),
                                        (401, WriteFailed), (404, WriteFailed), (429, WriteFailed),
                                        (500, WriteFailed), (503, WriteFailed)])
def test_v2_answers_are_classified(receiver, status, err):
    receiver.status = status
    receiver.body = b'{"code":"x","message":"answer %d"}' % status
    b = V2Backend(receiver.url, "t", "o", "b")
    try:
        with pytest.raises(err) as e:
            b.write(LINES)
    finally:
        b.close()
    assert str(status) in str(e.value) and f"answer {status}" in str(e.value)


def test_v2_unreachable_is_transient():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = srv.server_address[1]
    srv.server_close()  # nothing listens there any more
    b = V2Backend(f"http://127.0.0.1:{port}", "t", "o", "b", timeout_s=2)
    try:
        with pytest.raises(WriteFailed):
            b.write(LINES)
    finally:
        b.close()


def test_v1_request_shape_and_answers(receiver):
    b = V1Backend(receiver.url, "crp", username="writer", password="pw", retention_policy="autogen")
    try:
        b.write(LINES)
        receiver.status = 401
        with pytest.raises(WriteFailed):
            b.write(LINES)
        receiver.status = 400
        receiver.body = b'{"error":"partial write: field type conflict"}'
        with pytest.raises(WriteRefused, match="field type conflict"):
            b.write(LINES)
    finally:
        b.close()
    req = receiver.requests[0]
    assert req["path"] == "/write"
    assert req["query"] == {"db": "crp", "precision": "ms", "rp": "autogen"}
    assert req["headers"]["authorization"].startswith("Basic ")
    assert req["body"].splitlines() == LINES


def test_writer_with_v2_backend_spools_through_refusals_and_drains(receiver, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="server.telemetry.writer")
    receiver.status = 503
    w = TelemetryWriter(V2Backend(receiver.url, "t", "o", "b"), Spool(tmp_path / "spool.sqlite"))
    try:
        events = [Event(source="node-1", boot=1, seq=i + 1, kind="temp", site="DKR", machine="bandsaw-1",
                        t=T0 + i, body={"c": 20.0 + i}) for i in range(25)]
        assert w.submit(events, {"bandsaw-1": "bandsaw"}) == 25
        assert not w.flush(0.3)
        assert w.stats.in_outage and w.stats.pending == 25
        receiver.status = 204
        assert w.flush(FLUSH_S)
        s = w.stats
        assert (s.written, s.pending, s.outages) == (25, 0, 1)
    finally:
        w.close()
    accepted = [ln for r in receiver.requests if r["status"] == 204 for ln in r["body"].splitlines()]
    assert accepted == [f"machine_temp,machine=bandsaw-1,machine_type=bandsaw,site=DKR c={20.0 + i} {T0 + i}"
                        for i in range(25)]
    assert any(r["status"] == 503 for r in receiver.requests)
    levels = [r.levelno for r in caplog.records if r.name == "server.telemetry.writer"]
    assert levels.count(logging.WARNING) == 1 and levels.count(logging.INFO) == 1
