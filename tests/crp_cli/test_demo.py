"""`crp demo --once --json`, the newcomer's first command, run for real. It uses the embedded
amqtt broker here (what a machine without Mosquitto gets); the Mosquitto path is the same stack
as tests/e2e."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crp_cli.broker import free_port


@pytest.mark.slow
def test_demo_once_json_on_the_embedded_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_") and k != "DATABASE_URL"}
    env["CRP_DEMO_BROKER"] = "amqtt"
    r = subprocess.run([sys.executable, "-m", "crp_cli.main", "demo", "--once", "--json", "--date", "2026-03-02",
                        "--port", str(free_port())], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)  # one JSON object, nothing else on stdout
    assert summary["broker"] == "amqtt" and summary["date"] == "2026-03-02"
    assert summary["sessions"] > 50 and summary["open_sessions"] == 0
    # The scenario's planned refusals all reach the server with their reason.
    for reason in ("unknown_badge", "badge_revoked", "artisan_suspended", "not_qualified",
                   "qualification_expired", "machine_in_use"):
        assert summary["denied"].get(reason, 0) >= 1, summary["denied"]
    assert summary["denied"] == {k: v for k, v in summary["simulator"]["denied"].items()}
    # Twelve machines with custom nodes and three on metering plugs (readers have no sessions).
    assert len(summary["machines"]) == 15 and 20 <= len(summary["artisans"]) <= 30
    plugs = summary["plugs"]
    assert sorted(p["plug_type"] for p in plugs) == ["shelly1", "shelly2", "tasmota"]
    by_id = {m["id"]: m for m in summary["machines"]}
    for p in plugs:  # every plug machine worked, and every one of its sessions was metered
        assert p["sessions"] >= 1 and p["metered_sessions"] == p["sessions"], p
        assert p["energy_kwh"] > 0 and p["run_hours"] > 0, p
        assert by_id[p["machine"]]["sessions"] == p["sessions"]
    assert sum(m["sessions"] for m in summary["machines"]) == summary["sessions"]
    assert sum(a["sessions"] for a in summary["artisans"]) == summary["sessions"]
    assert summary["invoices"] and summary["invoice_totals"]["XOF"] == sum(i["total"] for i in summary["invoices"])
    assert summary["alerts"].get("condition") and summary["alerts"].get("fault")
    assert summary["notifications"].get("mqtt") and summary["notifications"].get("webhook")
    assert summary["dead_letters"] == 0
    assert (tmp_path / "crp.db").exists()  # other commands can use it afterwards
