"""The live path: events ingested through the API reach a real influxd through the writer
(after the commit), and the availability job writes the points the dashboards read."""

from __future__ import annotations

import datetime as dt

import pytest

from server.dashboards.hooks import write_availability
from server.telemetry import hooks

T0 = int(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)


@pytest.fixture
def influx_on(influxd, tmp_path, monkeypatch):
    db = influxd.create_database()
    for k, v in {"CRP_INFLUX_MODE": "v1", "CRP_INFLUX_URL": influxd.url, "CRP_INFLUX_DB": db,
                 "CRP_INFLUX_SPOOL": str(tmp_path / "tspool.sqlite")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(hooks, "_started", False)
    monkeypatch.setattr(hooks, "_writer", None)
    yield db
    w = hooks.writer()
    if w is not None:
        w.close()


def test_ingested_telemetry_and_availability_reach_influxdb(api, workshop, make_events, db_session, influxd,
                                                            influx_on) -> None:
    ev = make_events(gateway=workshop.gateway)
    batch = [ev.node("bandsaw-1", "node-bs1", 1, "temp", T0 + i * 60_000, c=30.0 + i) for i in range(5)]
    batch.append(ev.gw("bandsaw-1", "state", T0, state="available", cause="status"))
    batch.append(ev.gw("bandsaw-1", "state", T0 + 120_000, state="in_use", cause="badge"))
    r = api.post("/api/v1/ingest", json=ev.batch(batch), headers={"X-API-Key": workshop.api_key})
    assert r.status_code == 200 and r.json()["accepted"] == len(batch), r.text
    w = hooks.writer()
    assert w is not None and w.flush(10)
    rows = influxd.rows("SELECT count(c) FROM machine_temp WHERE machine = 'bandsaw-1'", influx_on)
    assert rows[0]["count"] == 5
    # Ingesting the same batch again (a gateway replay) adds no point: same series, same time.
    api.post("/api/v1/ingest", json=ev.batch(batch), headers={"X-API-Key": workshop.api_key})
    assert w.flush(10)
    assert influxd.rows("SELECT count(c) FROM machine_temp", influx_on)[0]["count"] == 5
    n = write_availability(db_session, dt.datetime.fromtimestamp(T0 / 1000 + 8 * 3600, dt.timezone.utc), w)
    assert n > 0 and w.flush(10)
    avail = influxd.rows("SELECT * FROM machine_availability WHERE machine = 'bandsaw-1'", influx_on)
    assert avail and all(0 <= row["availability"] <= 1 for row in avail if row.get("availability") is not None)
