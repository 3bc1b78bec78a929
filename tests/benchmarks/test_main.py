"""The command: one table, a results file with the machine, a failing benchmark reported."""

from __future__ import annotations

import json
from pathlib import Path

import benchmarks.__main__ as cli
from benchmarks.figures import Figure


def test_main_writes_results_and_reports_failures(monkeypatch, tmp_path: Path, capsys) -> None:
    def good(quick: bool):
        return [Figure("good", "speed", 12.5, "x", reference="ref", target=">= 1", met=True)], {"quick": quick}

    def bad(quick: bool):
        raise RuntimeError("broker gone")

    monkeypatch.setattr(cli, "BENCHES", {"good": good, "bad": bad})
    out = tmp_path / "results.json"
    rc = cli.main(["--quick", "--out", str(out)])
    assert rc == 1
    data = json.loads(out.read_text())
    assert data["quick"] is True
    assert set(data["machine"]) >= {"cpu", "cores", "ram_gb", "python", "mosquitto"}
    assert data["raw"]["good"]["quick"] is True
    assert data["errors"] == {"bad": "RuntimeError: broker gone"}
    assert [f["bench"] for f in data["figures"]] == ["good", "bad"]
    assert "speed" in capsys.readouterr().out
