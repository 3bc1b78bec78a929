"""The writer against a real influxd 1.x (v1 mode): points arrive, outages are survived."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from crp_common.events import Event
from server.telemetry import writer as writer_mod
from server.telemetry.spool import Spool
from server.telemetry.writer import TelemetryWriter, V1Backend

pytestmark = pytest.mark.influx

T0 = 1_718_000_000_000
LOGGER = "server.telemetry.writer"
WAIT_S = 30.0  # liveness bound for waits (a failure, not a speed check)
FLUSH_S = 30.0


@pytest.fixture(autouse=True)
def fast_timing(monkeypatch):
    monkeypatch.setattr(writer_mod, "RETRY_INITIAL_S", 0.02)
    monkeypatch.setattr(writer_mod, "RETRY_MAX_S", 0.1)
    monkeypatch.setattr(writer_mod, "FLUSH_INTERVAL_S", 0.05)
    monkeypatch.setattr(writer_mod, "BATCH_SIZE", 40)


def current_events(start: int, n: int, machine: str = "bandsaw-1") -> list[Event]:
    return [Event(source="node-1", boot=1, seq=start + i + 1, kind="current", site="DKR", machine=machine,
                  t=T0 + (start + i) * 1000, body={"amps": 1.0 + (start + i) % 7}) for i in range(n)]


def wait_until(cond, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


def count_current(influxd, db: str) -> int:
    rows = influxd.rows("SELECT count(amps) FROM machine_current", db)
    return rows[0]["count"] if rows else 0


def writer_messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@pytest.fixture
def db(influxd):
    influxd.start()  # a failed test may have left it stopped
    name = influxd.create_database()
    yield name
    influxd.start()
    influxd.drop_database(name)


def test_points_arrive_and_are_queryable(influxd, db, tmp_path):
    w = TelemetryWriter(V1Backend(influxd.url, db), Spool(tmp_path / "spool.sqlite"))
    try:
        events = current_events(0, 100)
        events += [
            Event(source="gw-1", boot=1, seq=1, kind="state", site="DKR", machine="bandsaw-1", t=T0 + 5,
                  body={"state": "in_use", "cause": "session_open"}),
            Event(source="node-1", boot=1, seq=500, kind="hb", site="DKR", machine="bandsaw-1", t=T0 + 7,
                  body={"relay": True, "motor": False, "rssi": -70}),
            Event(source="node-2", boot=1, seq=1, kind="fault", site="DKR", machine="lathe-2", t=T0 + 9,
                  body={"code": 'odd "code" \\', "active": True}),
        ]
        assert w.submit(events, {"bandsaw-1": "scie à ruban, 2", "lathe-2": "lathe"}) == 103
        assert w.flush(FLUSH_S)
        assert count_current(influxd, db) == 100
        assert w.stats.written == 103 and w.stats.pending == 0

        amps = influxd.rows("SELECT amps FROM machine_current WHERE time = %dms" % (T0 + 3000), db)
        assert amps == [{"time": T0 + 3000, "amps": 4.0}]
        # Tags with spaces, commas and accents come back as they were sent.
        tags = influxd.rows('SHOW TAG VALUES FROM machine_current WITH KEY = "machine_type"', db)
        assert tags == [{"key": "machine_type", "value": "scie à ruban, 2"}]
        keys = {r["tagKey"] for r in influxd.rows("SHOW TAG KEYS", db)}
        assert keys == {"site", "machine", "machine_type"}
        st = influxd.rows("SELECT state, state_code FROM machine_state", db)
        assert st == [{"time": T0 + 5, "state": "in_use", "state_code": 1}]
        hb = influxd.rows("SELECT relay, motor, rssi FROM machine_heartbeat", db)
        assert hb == [{"time": T0 + 7, "relay": 1, "motor": 0, "rssi": -70}]
        fault = influxd.rows('SELECT code, active FROM machine_fault WHERE "machine" = \'lathe-2\'', db)
        assert fault == [{"time": T0 + 9, "code": 'odd "code" \\', "active": 1}]
    finally:
        w.close()


def test_resending_the_same_events_duplicates_nothing(influxd, db, tmp_path):
    w = TelemetryWriter(V1Backend(influxd.url, db), Spool(tmp_path / "spool.sqlite"))
    try:
        events = current_events(0, 60)
        w.submit(events)
        assert w.flush(FLUSH_S)
        w.submit(events[10:50])  # e.g. a batch re-sent after a lost acknowledgement
        assert w.flush(FLUSH_S)
        assert w.stats.written == 100
        assert count_current(influxd, db) == 60
    finally:
        w.close()


def test_outage_spools_logs_once_and_drains_without_loss_or_duplicates(influxd, db, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    w = TelemetryWriter(V1Backend(influxd.url, db, timeout_s=5), Spool(tmp_path / "spool.sqlite"))
    try:
        w.submit(current_events(0, 100))
        assert w.flush(FLUSH_S)
        assert count_current(influxd, db) == 100

        # Outage 1: influxd goes away mid-run.
        influxd.stop()
        assert w.submit(current_events(100, 150)) == 150  # still accepted, straight to the spool
        wait_until(lambda: w.stats.failed_attempts >= 5, "several failed write attempts")
        assert w.submit(current_events(250, 50)) == 50
        wait_until(lambda: w.stats.failed_attempts >= 8, "more failed write attempts")
        assert w.stats.pending == 200 and w.stats.in_outage
        assert not w.flush(0.2)  # cannot drain while InfluxDB is down
        warnings = writer_messages(caplog, logging.WARNING)
        assert len(warnings) == 1, warnings
        assert "not accepting writes" in warnings[0]
        assert writer_messages(caplog, logging.INFO) == []

        influxd.start()
        assert w.flush(FLUSH_S)
        assert count_current(influxd, db) == 300
        infos = writer_messages(caplog, logging.INFO)
        assert len(infos) == 1 and "again" in infos[0]

        # Outage 2: one more warning, one more recovery, still nothing lost or doubled.
        failed_before = w.stats.failed_attempts
        influxd.stop()
        w.submit(current_events(300, 80))
        wait_until(lambda: w.stats.failed_attempts >= failed_before + 3, "failed attempts in the second outage")
        influxd.start()
        assert w.flush(FLUSH_S)
        s = w.stats
        assert (s.outages, s.written, s.spooled, s.pending, s.dropped) == (2, 380, 380, 0, 0)
        assert len(writer_messages(caplog, logging.WARNING)) == 2
        assert len(writer_messages(caplog, logging.INFO)) == 2
        assert count_current(influxd, db) == 380
        times = [r["time"] for r in influxd.rows("SELECT amps FROM machine_current", db)]
        assert times == [T0 + i * 1000 for i in range(380)]
    finally:
        influxd.start()
        w.close()


def test_spooled_points_survive_a_writer_restart(influxd, db, tmp_path):
    spool_path = tmp_path / "spool.sqlite"
    influxd.stop()
    try:
        w1 = TelemetryWriter(V1Backend(influxd.url, db, timeout_s=5), Spool(spool_path))
        w1.submit(current_events(0, 70))
        wait_until(lambda: w1.stats.failed_attempts >= 1, "a failed write attempt")
        w1.close(flush_timeout=0)  # the server process stops during the outage
    finally:
        influxd.start()
    w2 = TelemetryWriter(V1Backend(influxd.url, db), Spool(spool_path))
    try:
        assert w2.stats.pending == 70
        assert w2.flush(FLUSH_S)
        assert count_current(influxd, db) == 70
    finally:
        w2.close()


def test_missing_database_is_an_outage_until_it_exists(influxd, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    influxd.start()
    name = "late_db"
    w = TelemetryWriter(V1Backend(influxd.url, name), Spool(tmp_path / "spool.sqlite"))
    try:
        w.submit(current_events(0, 30))
        wait_until(lambda: w.stats.failed_attempts >= 3, "refused writes")
        warnings = writer_messages(caplog, logging.WARNING)
        assert len(warnings) == 1 and "404" in warnings[0] and "database not found" in warnings[0]
        influxd.create_database(name)
        assert w.flush(FLUSH_S)
        assert count_current(influxd, name) == 30
    finally:
        w.close()
        influxd.drop_database(name)


def test_points_influxdb_refuses_for_good_are_set_aside(influxd, db, tmp_path, monkeypatch):
    monkeypatch.setattr(writer_mod, "BATCH_SIZE", 1)
    w = TelemetryWriter(V1Backend(influxd.url, db), Spool(tmp_path / "spool.sqlite"))
    try:
        w.submit(current_events(0, 3))
        assert w.flush(FLUSH_S)
        # amps was a float; an integer amps is a field type conflict, refused with a 400.
        bad = f"machine_current,machine=bandsaw-1,site=DKR amps=5i {T0 + 999_000}"
        w.submit_lines([bad])
        w.submit(current_events(3, 2))
        assert w.flush(FLUSH_S)
        s = w.stats
        assert (s.written, s.rejected, s.pending, s.outages) == (5, 1, 0, 0)
        [(line, reason)] = w.spool.rejected_points()
        assert line == bad and "400" in reason and "conflict" in reason
        assert count_current(influxd, db) == 5
    finally:
        w.close()


def test_submit_never_waits_for_a_hanging_influxdb(tmp_path):
    """A listener that accepts connections and never answers stands in for a hung InfluxDB."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    got_request = threading.Event()
    conns: list[socket.socket] = []

    def accept():
        try:
            c, _ = srv.accept()
        except OSError:
            return
        conns.append(c)
        c.recv(65536)
        got_request.set()

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}"
    w = TelemetryWriter(V1Backend(url, "crp", timeout_s=1), Spool(tmp_path / "spool.sqlite"))
    try:
        w.submit(current_events(0, 10))
        w.flush(0)  # kick an attempt now
        assert got_request.wait(WAIT_S), "the writer never sent its request"
        # The drain thread is stuck in that request; submitting still goes straight to disk.
        assert w.submit(current_events(10, 500)) == 500
        assert w.stats.spooled == 510 and w.stats.written == 0
    finally:
        srv.close()
        w.close(flush_timeout=0)
        for c in conns:
            c.close()
