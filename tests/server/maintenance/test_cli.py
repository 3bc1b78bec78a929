"""``crp alerts``: the listing (JSON and text), evaluate, and bad input."""

from __future__ import annotations

import datetime as dt
import json

from typer.testing import CliRunner

from server.maintenance.cli import app

T0 = int(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)


def test_alerts_json_lists_kind_machine_state(api, workshop, events, migrated_url):
    events.node("bandsaw-1", "node-bs1", 1, "fault", T0, code="estop", active=True)
    events.node("lathe-1", "node-lt1", 1, "fault", T0 + 1000, code="sensor", active=True)
    assert api.post("/api/v1/ingest", json=events.batch(), headers={"X-API-Key": workshop.api_key}).status_code == 200
    runner = CliRunner()
    r = runner.invoke(app, ["--json", "--database-url", migrated_url])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(a["kind"], a["machine"], a["state"]) for a in rows] == [("fault", "lathe-1", "open"), ("fault", "bandsaw-1", "open")]
    r = runner.invoke(app, ["--json", "--machine", "bandsaw-1", "--database-url", migrated_url])
    assert [a["cause"] for a in json.loads(r.stdout)] == ["fault:estop"]
    r = runner.invoke(app, ["--state", "open", "--lang", "en", "--database-url", migrated_url])
    assert r.exit_code == 0 and "Fault  bandsaw-1  open  2026-03-02 08:00  fault:estop" in r.stdout
    r = runner.invoke(app, ["evaluate", "--lang", "en", "--database-url", migrated_url])
    assert r.exit_code == 0 and "escalation" in r.stdout
    # both alerts were raised long ago and nobody acknowledged them
    rows = json.loads(runner.invoke(app, ["--json", "--database-url", migrated_url]).stdout)
    assert all(a["escalated_at"] is not None for a in rows)


def test_bad_input_exits_2(tmp_path, migrated_url):
    runner = CliRunner()
    r = runner.invoke(app, ["--state", "sleeping", "--database-url", migrated_url])
    assert r.exit_code == 2 and "--state" in r.output
    r = runner.invoke(app, ["--json", "--database-url", f"sqlite:///{tmp_path / 'empty.db'}"])
    assert r.exit_code == 2 and "crp db upgrade" in r.output
