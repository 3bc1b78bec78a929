"""``crp dashboards check`` exit codes and JSON, against the filled databases."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from server.dashboards.cli import app

from .conftest import DASHBOARDS

runner = CliRunner()
RANGE = ["--from", "2026-03-02", "--to", "2026-03-03T00:00:00Z"]


def check_args(filled_day, *extra):
    return ["check", "--dashboards", str(DASHBOARDS), "--database-url", filled_day.pg_url,
            "--influx-url", filled_day.influx_url, "--influx-db", filled_day.influx_db, *RANGE, *extra]


@pytest.mark.postgres
@pytest.mark.influx
def test_check_json_all_ok_exits_0(filled_day):
    r = runner.invoke(app, check_args(filled_day, "--json", "--require-data"))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out and all(x["status"] == "ok" for x in out)
    assert {"dashboard", "panel_id", "panel_title", "ref_id", "status", "rows", "columns", "message"} <= set(out[0])


@pytest.mark.postgres
@pytest.mark.influx
def test_check_without_data_passes_unless_data_is_required(filled_day):
    args = check_args(filled_day, "--json", "--site", "DLA")
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "--require-data"]).exit_code == 1


@pytest.mark.postgres
@pytest.mark.influx
def test_check_exits_1_when_a_panel_fails(filled_day, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(DASHBOARDS, d)
    dash = json.loads((d / "revenue.json").read_text("utf-8"))
    dash["panels"][0]["targets"][0]["rawSql"] = "SELECT nope FROM invoices"
    (d / "revenue.json").write_text(json.dumps(dash), "utf-8")
    args = check_args(filled_day, "--json")
    args[args.index("--dashboards") + 1] = str(d)
    r = runner.invoke(app, args)
    assert r.exit_code == 1
    errors = [x for x in json.loads(r.stdout) if x["status"] == "error"]
    assert [(e["dashboard"], e["panel_id"]) for e in errors] == [("crp-revenue", 1)]
    table = runner.invoke(app, [a for a in args if a != "--json"] + ["--lang", "fr"])
    assert table.exit_code == 1 and "erreur" in table.stdout and "nope" in table.stdout


@pytest.mark.parametrize("args,needle", [
    (["--from", "yesterday"], "yesterday"),
    (["--database-url", "sqlite:///x.db"], "PostgreSQL"),
    (["--dashboards", "/nonexistent"], "not a directory"),
])
def test_check_bad_input_exits_2(args, needle):
    base = ["check", "--dashboards", str(DASHBOARDS), "--database-url", "postgresql+psycopg://u@127.0.0.1:1/x",
            "--influx-url", "http://127.0.0.1:1", "--influx-db", "crp", "--lang", "en"]
    r = runner.invoke(app, base + args)
    assert r.exit_code == 2
    assert needle in r.output


@pytest.mark.postgres
@pytest.mark.influx
def test_availability_command(filled_day):
    r = runner.invoke(app, ["availability", "--from", "2026-03-02", "--site", "DKR", "--database-url",
                            filled_day.pg_url, "--json"])
    assert r.exit_code == 0, r.output
    days = {d["machine"]: d for d in json.loads(r.stdout)}
    assert set(days) == {"bandsaw-1", "lathe-1", "lathe-2"}
    assert days["lathe-2"]["open_state_s"]["maintenance"] == 5 * 3600
    assert days["lathe-1"]["open_state_s"]["fault"] == 2 * 3600 + 1800  # 16:00-18:30
    bad = runner.invoke(app, ["availability", "--from", "2026-03-05", "--to", "2026-03-01", "--site", "DKR",
                              "--database-url", filled_day.pg_url, "--lang", "en"])
    assert bad.exit_code == 2 and "to < from" in bad.output
