"""Every panel query of every dashboard, run against a real PostgreSQL and a real influxd
filled with a simulated day by the server's own code (see conftest.py): each must return
rows of the expected shape. Plus what the check says when something is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from server.dashboards.check import CheckSetupError, check_dashboards

from .conftest import DASHBOARDS, T_FROM, T_TO  # noqa: F401 - same package, not the root conftest

pytestmark = [pytest.mark.postgres, pytest.mark.influx]

# (dashboard uid, panel id, refId) -> the columns the panel's visualisation is built on
EXPECTED = {
    ("crp-overview", 1, "A"): ["machine", "state_code"],
    ("crp-overview", 2, "A"): ["machine", "time", "last"],
    ("crp-overview", 3, "A"): ["time", "machine", "kind", "cause", "state", "critical", "acknowledged_by"],
    ("crp-overview", 4, "A"): ["machine", "task", "interval_h", "used_h", "left_h", "status"],
    ("crp-availability", 1, "A"): ["machine", "time", "availability"],
    ("crp-availability", 2, "A"): ["machine", "time", "utilisation"],
    ("crp-availability", 2, "B"): ["machine", "time", "run_utilisation"],
    ("crp-availability", 3, "A"): ["machine", "time", "last"],
    ("crp-availability", 4, "A"): ["time", "machine", "run_hours"],
    ("crp-availability", 5, "A"): ["weekday", "hour", "sessions"],
    ("crp-availability", 6, "A"): ["machine", "time", "kwh"],
    ("crp-maintenance", 1, "A"): ["machine", "task", "interval_h", "used_h", "left_h", "status"],
    ("crp-maintenance", 2, "A"): ["time", "machine", "kind", "cause", "state", "critical", "acknowledged_by"],
    ("crp-maintenance", 3, "A"): ["machine", "time", "mean"],
    ("crp-maintenance", 4, "A"): ["machine", "time", "mean"],
    ("crp-maintenance", 5, "A"): ["machine", "time", "mean"],
    ("crp-revenue", 1, "A"): ["machine", "currency", "revenue", "sessions", "billed_hours"],
    ("crp-revenue", 2, "A"): ["machine", "currency", "revenue", "sessions", "billed_hours"],
    ("crp-revenue", 3, "A"): ["time", "machine", "revenue"],
}


@pytest.fixture(scope="module")
def results(filled_day):
    return check_dashboards(DASHBOARDS, filled_day.pg_url, filled_day.influx_url, filled_day.influx_db,
                            T_FROM, T_TO, {})


def by_key(results):
    return {(r.dashboard, r.panel_id, r.ref_id): r for r in results if r.panel_type != "variable"}


def test_every_panel_returns_rows_of_the_expected_shape(results):
    panels = by_key(results)
    assert set(panels) == set(EXPECTED)
    for key, r in panels.items():
        assert r.status == "ok", (key, r.message, r.query)
        assert r.columns == EXPECTED[key], key
        assert r.rows > 0


def test_variables_resolve_from_postgresql(results):
    variables = [r for r in results if r.panel_type == "variable"]
    assert {(r.ref_id, r.status, r.rows) for r in variables} == {("site", "ok", 1), ("machine", "ok", 3)}


def test_the_rows_say_what_happened_that_day(results):
    p = by_key(results)
    tiles = dict(map(tuple, p["crp-overview", 1, "A"].first_rows))
    assert tiles == {"bandsaw-1": 0, "lathe-1": 3, "lathe-2": 0}  # lathe-1 ended the day in fault
    alerts = {(row[1], row[2]) for row in p["crp-overview", 3, "A"].first_rows}
    assert alerts == {("lathe-1", "fault"), ("lathe-1", "due_soon")}
    left = {row[0]: row[4] for row in p["crp-overview", 4, "A"].first_rows}
    assert left["lathe-1"] == pytest.approx(1.4 - 80 / 60)  # 1 h 20 of motor run on a 1.4 h plan
    assert left["bandsaw-1"] == pytest.approx(50 - (65 + 75) / 60)
    assert p["crp-availability", 5, "A"].rows == 7 * 24  # the full weekday x hour grid
    revenue = {row[0]: row[2] for row in p["crp-revenue", 1, "A"].first_rows}
    # bandsaw: Awa (member) 1 h 15 -> 2,500; Moussa 1 h 30 at 3,000/h -> 4,500. lathe: 1 h 45 at 1,500/h
    assert revenue == {"bandsaw-1": 7000, "lathe-1": 2625}
    # The bandsaw's meter: 0.6 kWh in the 08:00 hour, 1.4 in the 09:00 hour, 0.5 in the 11:00 hour;
    # its counter's restart at 0 (10:10) counts as nothing, never as negative energy.
    kwh = [(row[0], row[2]) for row in p["crp-availability", 6, "A"].first_rows]
    assert kwh == [("bandsaw-1", pytest.approx(v)) for v in (0.6, 1.4, 0.5)], kwh
    avail = {row[0]: row[2] for row in p["crp-availability", 1, "A"].first_rows}
    assert avail["lathe-2"] == pytest.approx(1 - 5 / 11)  # maintenance 12:00-17:00 of 07:30-18:30


def test_a_site_variable_narrows_the_queries(filled_day):
    res = check_dashboards(DASHBOARDS, filled_day.pg_url, filled_day.influx_url, filled_day.influx_db,
                           T_FROM, T_TO, {"site": ["DLA"]})
    panels = by_key(res)
    assert all(r.status != "error" for r in res), [(r.panel_title, r.message) for r in res if r.status == "error"]
    assert panels["crp-overview", 1, "A"].status == "no_data"
    assert panels["crp-availability", 1, "A"].status == "no_data"


def test_a_broken_query_is_reported_with_its_message(filled_day, tmp_path):
    d = tmp_path / "dashboards"
    shutil.copytree(DASHBOARDS / "provisioning", d / "provisioning")
    dash = json.loads((DASHBOARDS / "revenue.json").read_text("utf-8"))
    dash["panels"][0]["targets"][0]["rawSql"] = "SELECT no_such_column FROM invoices WHERE site IN ($site)"
    dash["panels"][1]["targets"][0]["rawSql"] = "SELECT $undefined"
    dash["panels"][2]["targets"][0]["rawSql"] = "SELECT machine, 1 AS revenue FROM invoice_lines"
    (d / "revenue.json").write_text(json.dumps(dash), "utf-8")
    res = by_key(check_dashboards(d, filled_day.pg_url, None, None, T_FROM, T_TO, {}))
    assert res["crp-revenue", 1, "A"].status == "error" and "no_such_column" in res["crp-revenue", 1, "A"].message
    assert res["crp-revenue", 2, "A"].message == "undefined variable $undefined"
    assert res["crp-revenue", 3, "A"].message == "format time_series needs a column named 'time'"


def test_influx_down_or_missing_is_an_error_per_panel(filled_day):
    from crp_cli.broker import free_port

    res = check_dashboards(DASHBOARDS, filled_day.pg_url, f"http://127.0.0.1:{free_port()}", "crp", T_FROM, T_TO, {})
    influx = [r for r in res if r.datasource == "crp-influx"]
    assert influx and all(r.status == "error" and "InfluxDB unreachable" in r.message for r in influx)
    assert all(r.status == "ok" for r in res if r.datasource == "crp-postgres")
    res = check_dashboards(DASHBOARDS, filled_day.pg_url, filled_day.influx_url, "no_such_db", T_FROM, T_TO, {})
    assert any("database not found" in r.message for r in res if r.datasource == "crp-influx")


def test_sqlite_or_missing_dashboards_cannot_be_checked(tmp_path):
    with pytest.raises(CheckSetupError, match="PostgreSQL"):
        check_dashboards(DASHBOARDS, f"sqlite:///{tmp_path}/x.db", None, None, T_FROM, T_TO, {})
    with pytest.raises(CheckSetupError, match="not a directory"):
        check_dashboards(tmp_path / "nope", None, None, None, T_FROM, T_TO, {})
    with pytest.raises(CheckSetupError, match="after"):
        check_dashboards(DASHBOARDS, None, None, None, T_TO, T_FROM, {})
