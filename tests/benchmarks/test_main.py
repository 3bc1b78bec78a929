"""The command: one table, a results file with the machine, a failing benchmark reported, every
benchmark in a fresh child process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import benchmarks.__main__ as cli
from benchmarks.figures import Figure


def _good(o: cli.Options):
    return [Figure("good", "speed", 12.5, "x", reference="ref", target=">= 1", met=True)], \
        {"quick": o.quick, "postgres_url": o.postgres_url, "ran_in": os.getpid()}


def _bad(o: cli.Options):
    raise RuntimeError("broker gone")


def _dies(o: cli.Options):
    os._exit(3)


@pytest.mark.parametrize("same_process", [False, True])
def test_main_writes_results_and_reports_failures(monkeypatch, tmp_path: Path, capsys, same_process) -> None:
    monkeypatch.setattr(cli, "BENCHES", {"good": _good, "bad": _bad})
    out = tmp_path / "results.json"
    rc = cli.main(["--quick", "--out", str(out), "--postgres", "postgresql+psycopg://nobody@127.0.0.1:1/none"]
                  + (["--same-process"] if same_process else []))
    assert rc == 1
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["postgres"] is True and data["isolated"] is (not same_process)
    assert set(data["machine"]) >= {"cpu", "cores", "ram_gb", "python", "mosquitto", "postgresql"}
    assert data["machine"]["postgresql"].startswith("PostgreSQL (unreachable")
    assert data["raw"]["good"]["quick"] is True
    assert data["raw"]["good"]["postgres_url"] == "postgresql+psycopg://nobody@127.0.0.1:1/none"
    assert data["errors"] == {"bad": "RuntimeError: broker gone"}
    assert [f["bench"] for f in data["figures"]] == ["good", "bad"]
    captured = capsys.readouterr()
    assert "speed" in captured.out
    assert "broker gone" in captured.err  # the traceback, from the child when isolated
    assert (data["raw"]["good"]["ran_in"] == os.getpid()) is same_process


def test_each_benchmark_runs_in_its_own_fresh_process(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "BENCHES", {"one": _good, "two": _good, "dies": _dies})
    out = tmp_path / "results.json"
    assert cli.main(["--out", str(out)]) == 1
    data = json.loads(out.read_text())
    pids = {data["raw"][n]["ran_in"] for n in ("one", "two")}
    assert len(pids) == 2 and os.getpid() not in pids
    assert data["errors"]["dies"] == "the benchmark's process ended without a result (exit code 3)"
