"""The dashboard JSON under dashboards/, checked by hand-written rules: unique uids and panel
ids, layout present, datasources that resolve to provisioned ones, variables defined, and
queries written the portable way (plain InfluxQL, macros without nested calls)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.dashboards.check import iter_panels, load_dashboards, provisioned_datasources, target_datasource
from server.dashboards.expand import SQL_MACRO_RE, used_variables

DASHBOARDS = Path(__file__).resolve().parents[3] / "dashboards"

DASHES = load_dashboards(DASHBOARDS)
PROVISIONED = provisioned_datasources(DASHBOARDS)
IDS = [p.name for p, _ in DASHES]
EXPECTED_PANEL_TYPES = {"stat", "state-timeline", "table", "timeseries", "bargauge"}
FLUX_WORDS = re.compile(r"\bfrom\s*\(\s*bucket|\|>|range\s*\(\s*start")


def targets(dash):
    for p in iter_panels(dash["panels"]):
        for t in p.get("targets") or []:
            yield p, t


def test_the_expected_dashboards_exist():
    assert {d["uid"] for _, d in DASHES} == {"crp-overview", "crp-availability", "crp-maintenance", "crp-revenue"}
    assert set(PROVISIONED) == {"crp-influx", "crp-postgres"}


def test_dashboard_uids_are_unique_and_stable():
    uids = [d["uid"] for _, d in DASHES]
    assert len(uids) == len(set(uids))
    for _, d in DASHES:
        assert re.fullmatch(r"[a-z0-9-]{1,40}", d["uid"]), d["uid"]
        assert d.get("id") is None  # Grafana assigns ids; the uid names the dashboard
        assert 36 <= d["schemaVersion"] <= 41


@pytest.mark.parametrize("path,dash", DASHES, ids=IDS)
def test_panel_ids_unique_and_layout_present(path, dash):
    panels = list(iter_panels(dash["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids {ids}"
    for p in panels:
        g = p.get("gridPos")
        assert g and all(isinstance(g.get(k), int) for k in "hwxy"), f"{path.name} panel {p['id']}: gridPos"
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        assert p["type"] in EXPECTED_PANEL_TYPES and p["title"]


@pytest.mark.parametrize("path,dash", DASHES, ids=IDS)
def test_every_datasource_is_a_provisioned_one(path, dash):
    seen = 0
    for p, t in targets(dash):
        ds = target_datasource(p, t)
        assert ds.get("uid") in PROVISIONED, f"{path.name} panel {p['id']}: datasource {ds}"
        assert ds.get("type") == PROVISIONED[ds["uid"]], f"{path.name} panel {p['id']}: type {ds}"
        seen += 1
    for v in dash["templating"]["list"]:
        assert v["datasource"]["uid"] in PROVISIONED
    assert seen


@pytest.mark.parametrize("path,dash", DASHES, ids=IDS)
def test_site_and_machine_variables_defined_and_used_variables_exist(path, dash):
    defined = [v["name"] for v in dash["templating"]["list"]]
    assert defined[:2] == ["site", "machine"]
    machine = dash["templating"]["list"][1]
    assert "$site" in machine["query"]  # machines of the chosen sites
    texts = [v["query"] for v in dash["templating"]["list"]]
    texts += [t.get("rawSql") or t.get("query") or "" for _, t in targets(dash)]
    for i, text in enumerate(texts):
        for name in used_variables(text):
            assert name in defined[: i if i < len(defined) else None], f"{path.name}: ${name} undefined in {text!r}"


@pytest.mark.parametrize("path,dash", DASHES, ids=IDS)
def test_queries_are_portable(path, dash):
    for p, t in targets(dash):
        if t["datasource"]["uid"] == "crp-influx":
            q = t["query"]
            assert t.get("rawQuery") is True and q.lstrip().upper().startswith("SELECT")
            assert not FLUX_WORDS.search(q), f"panel {p['id']}: Flux is not portable"
            assert "$timeFilter" in q  # bounded by the dashboard's time range
            # multi-value variables as anchored regexes
            for name in used_variables(q):
                assert f"=~ /^${{{name}:regex}}$/" in q, f"panel {p['id']}: ${name} not as /^${{{name}:regex}}$/"
        else:
            sql = t["rawSql"]
            assert t["format"] in ("table", "time_series")
            if t["format"] == "time_series":
                assert '"time"' in sql
            for m in SQL_MACRO_RE.finditer(sql):
                arg = sql[m.end(): sql.index(")", m.end())]
                assert "(" not in arg, f"panel {p['id']}: nested call in $__{m.group(1)}() (older Grafana)"


def test_state_value_mappings_cover_every_state_in_french():
    from server.telemetry.points import STATE_CODES

    overview = next(d for _, d in DASHES if d["uid"] == "crp-overview")
    tiles = next(p for p in overview["panels"] if p["type"] == "stat")
    mapping = tiles["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert set(mapping) == {str(c) for c in STATE_CODES.values()}
    assert mapping[str(STATE_CODES["available"])]["text"] == "Disponible"
    assert all(m.get("color") for m in mapping.values())
