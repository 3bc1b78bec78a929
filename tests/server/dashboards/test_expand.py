"""Grafana's variable and macro expansion, reproduced for the check (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from server.dashboards.expand import (
    ExpandError,
    TimeRange,
    Variable,
    duration_text,
    expand_query,
    interval_ms,
    used_variables,
)

UTC = dt.timezone.utc
TR = TimeRange(dt.datetime(2026, 3, 2, tzinfo=UTC), dt.datetime(2026, 3, 3, tzinfo=UTC))
VARS = {"site": Variable("site", ("DKR", "DLA")), "machine": Variable("machine", ("lathe-1",)),
        "one": Variable("one", ("x'y",), multi=False)}


def test_sql_multi_value_variables_become_quoted_lists():
    sql = "SELECT 1 FROM m WHERE site IN ($site) AND id IN (${machine}) AND x = '[[one]]'"
    assert expand_query(sql, "sql", TR, VARS) == (
        "SELECT 1 FROM m WHERE site IN ('DKR','DLA') AND id IN ('lathe-1') AND x = 'x'y'")


def test_sql_quotes_are_escaped_and_empty_lists_match_nothing():
    v = {"site": Variable("site", ("O'Hara",)), "machine": Variable("machine", ())}
    assert expand_query("$site / $machine", "sql", TR, v) == "'O''Hara' / NULL"


def test_sql_macros():
    sql = "SELECT $__time(t) FROM x WHERE $__timeFilter(started) AND a > $__timeFrom() AND a < $__timeTo() AND $__unixEpochFilter(s)"
    assert expand_query(sql, "sql", TR, VARS) == (
        "SELECT t AS \"time\" FROM x WHERE started BETWEEN '2026-03-02T00:00:00Z' AND '2026-03-03T00:00:00Z' "
        "AND a > '2026-03-02T00:00:00Z' AND a < '2026-03-03T00:00:00Z' AND s >= 1772409600 AND s <= 1772496000")
    assert expand_query("$__timeFilter(to_timestamp(x / 1000.0))", "sql", TR, {}).startswith(
        "to_timestamp(x / 1000.0) BETWEEN")


def test_influxql_regex_variables_and_time_filter():
    q = 'SELECT last("state_code") FROM "machine_state" WHERE "site" =~ /^${site:regex}$/ AND "machine" =~ /^$machine$/ AND $timeFilter GROUP BY time($__interval), "machine"'
    assert expand_query(q, "influxql", TR, VARS) == (
        'SELECT last("state_code") FROM "machine_state" WHERE "site" =~ /^(DKR|DLA)$/ AND "machine" =~ /^lathe-1$/ '
        'AND time >= 1772409600000ms and time <= 1772496000000ms GROUP BY time(2m), "machine"')


def test_regex_escaping():
    v = {"m": Variable("m", ("a.b/c", "d"))}
    assert expand_query("/^${m:regex}$/", "influxql", TR, v) == r"/^(a\.b\/c|d)$/"


def test_interval_follows_the_range():
    assert interval_ms(TR) == 120_000  # 86.4 s per point -> 2m
    short = TimeRange(TR.start, TR.start + dt.timedelta(minutes=10))
    assert interval_ms(short) == 10_000  # never below the datasource's 10s
    assert [duration_text(n) for n in (500, 10_000, 120_000, 3_600_000, 86_400_000)] == ["500ms", "10s", "2m", "1h", "1d"]


@pytest.mark.parametrize("text,dialect,msg", [
    ("SELECT $nope", "sql", "undefined variable $nope"),
    ("SELECT $__timeGroupAlias(t, 1h)", "sql", "unsupported SQL macro"),
    ("SELECT $__timeFilter()", "sql", "needs a column"),
    ("SELECT $__timeFilter(a", "sql", "unbalanced"),
    ("SELECT ${site:json}", "sql", "unsupported variable format"),
    ("SELECT $__range_s", "influxql", "unsupported macro or built-in"),
])
def test_what_grafana_would_not_expand_is_an_error(text, dialect, msg):
    with pytest.raises(ExpandError, match=msg.replace("$", r"\$")):
        expand_query(text, dialect, TR, VARS)


def test_used_variables_ignores_macros():
    assert used_variables('WHERE $__timeFilter(t) AND a IN ($site) AND b =~ /^${machine:regex}$/ AND $timeFilter') == ["site", "machine"]


def test_time_range_must_be_aware_and_ordered():
    with pytest.raises(ExpandError):
        TimeRange(dt.datetime(2026, 3, 2), dt.datetime(2026, 3, 3))
    with pytest.raises(ExpandError):
        TimeRange(TR.end, TR.start)
