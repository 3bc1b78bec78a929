"""`crp sim run`: plays part of a generated day against the private broker."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from typer.testing import CliRunner

from firmware_sim.cli import app
from firmware_sim.scenario import TAP_OPS, generate_day
from firmware_sim.workshop import load_workshop

DAY = "2025-03-12"


def test_run_plays_the_morning_and_prints_a_summary(mosquitto, tmp_path, fake_gateway, recorder):
    gw = fake_gateway(lambda machine, badge: {"result": "deny", "reason": "machine_locked", "text": "Maintenance"})
    user, pw = mosquitto.creds("sim")
    ws = load_workshop()
    planned = generate_day(ws, dt.date.fromisoformat(DAY), 11)
    until = dt.datetime.combine(dt.date.fromisoformat(DAY), dt.time(8, 30), dt.timezone(dt.timedelta(0))).timestamp()
    plugged = {m.id for m in ws.plug_machines}
    # Without the plugs' broker user the machines on plugs are left out, the others play their day.
    taps = [a for a in planned if a.op in TAP_OPS and a.at <= until and a.machine not in plugged]  # Dakar is UTC+0
    assert taps and plugged
    result = CliRunner().invoke(app, [
        "run", "--host", mosquitto.host, "--port", str(mosquitto.port), "--date", DAY, "--seed", "11",
        "--speed", "2000", "--until", "08:30", "--state-dir", str(tmp_path), "--decision-timeout", "3",
        "--lang", "en"], env={"CRP_MQTT_USERNAME": user, "CRP_MQTT_PASSWORD": pw})
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(rf"Badge taps\W+{len(taps)}\b", out)
    assert re.search(rf"Denied badges\W+{len(taps)}\b", out)
    assert "Machine locked for maintenance" in out
    assert f"{len(plugged)} machines on metering plugs are not played" in out
    assert sorted(b.uid for _, b in gw.requests) == sorted(a.args["uid"] for a in taps)
    # Every node booted once and left its Will at the end.
    assert {p.name for p in tmp_path.iterdir()} == {f"{m.node}.json" for m in ws.machines if m.plug is None}


@pytest.mark.parametrize("args, message", [
    (["--date", "12/03/2025"], "--date"),
    (["--until", "late"], "--until"),
    (["--clock", "fast:1"], "bad clock spec"),
    (["--speed", "0"], "--speed"),
])
def test_bad_options_get_a_clear_error(tmp_path, args, message):
    result = CliRunner().invoke(app, ["run", "--state-dir", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_bad_workshop_file_gets_a_clear_error(tmp_path):
    bad = tmp_path / "w.json"
    bad.write_text("{}")
    result = CliRunner().invoke(app, ["run", "--workshop", str(bad)])
    assert result.exit_code == 2 and "site" in result.output
