"""Run every panel query of every dashboard against the real databases and say, per panel
query, whether it worked and returned data.

    results = check_dashboards(Path("dashboards"), pg_url, influx_url, influx_db,
                               time_from, time_to, {"site": ["DKR"]})

Template variables not given are resolved as Grafana does with "All": their own query is run
(``SELECT code FROM sites``, then ``SELECT id FROM machines WHERE site IN ($site)``) and every
value is used; those variable queries are reported too. SQL runs on PostgreSQL through
SQLAlchemy in a read-only transaction; InfluxQL through the v1 ``GET /query`` endpoint (served
by InfluxDB 1.x, by 2.x through its DBRP mapping and by 3.x).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import httpx
import yaml

from .expand import Dialect, ExpandError, TimeRange, Variable, expand_query, used_variables

Status = Literal["ok", "no_data", "error"]

QUERY_TIMEOUT_S = 30
SQL_TYPES = frozenset({"grafana-postgresql-datasource", "postgres"})
INFLUX_TYPES = frozenset({"influxdb"})
MAX_MESSAGE = 500
SAMPLE_ROWS = 5


@dataclass
class PanelResult:
    dashboard: str  # uid
    dashboard_title: str
    panel_id: int  # 0 for a template variable's query
    panel_title: str
    panel_type: str  # "variable" for a template variable's query
    ref_id: str
    datasource: str  # uid
    status: Status
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    message: str = ""
    query: str = ""
    first_rows: list[list[Any]] = field(default_factory=list)  # up to SAMPLE_ROWS, JSON-safe

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CheckSetupError(ValueError):
    """The check cannot run at all (no dashboards, not PostgreSQL...)."""


# --------------------------------------------------------------------------- dashboards


def load_dashboards(dashboards_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every ``*.json`` directly under ``dashboards_dir``, sorted by file name."""
    if not dashboards_dir.is_dir():
        raise CheckSetupError(f"{dashboards_dir}: not a directory")
    out = []
    for path in sorted(dashboards_dir.glob("*.json")):
        try:
            d = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise CheckSetupError(f"{path}: {e}") from None
        if not isinstance(d, dict):
            raise CheckSetupError(f"{path}: not a dashboard object")
        out.append((path, d))
    if not out:
        raise CheckSetupError(f"{dashboards_dir}: no dashboard (*.json)")
    return out


def iter_panels(panels: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels") or [])


def provisioned_datasources(dashboards_dir: Path) -> dict[str, str]:
    """uid -> type of the datasources in ``<dir>/provisioning/datasources/*.yaml``."""
    out: dict[str, str] = {}
    for path in sorted((dashboards_dir / "provisioning" / "datasources").glob("*.y*ml")):
        doc = yaml.safe_load(path.read_text("utf-8")) or {}
        for ds in doc.get("datasources") or []:
            if ds.get("uid"):
                out[str(ds["uid"])] = str(ds.get("type", ""))
    return out


def target_datasource(panel: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    ds = target.get("datasource") or panel.get("datasource") or {}
    return ds if isinstance(ds, dict) else {"uid": str(ds)}


def target_text(target: dict[str, Any], dialect: Dialect) -> str:
    return str(target.get("rawSql") if dialect == "sql" else target.get("query") or "")


def dialect_of(ds: Mapping[str, Any], types: Mapping[str, str]) -> Dialect | None:
    t = str(ds.get("type") or types.get(str(ds.get("uid")), ""))
    if t in SQL_TYPES:
        return "sql"
    if t in INFLUX_TYPES:
        return "influxql"
    return None


# --------------------------------------------------------------------------- runners


class SqlRunner:
    def __init__(self, url: str):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        try:
            backend = make_url(url).get_backend_name()
        except Exception as e:  # noqa: BLE001 - sqlalchemy's URL errors vary
            raise CheckSetupError(f"database URL: {e}") from None
        if backend != "postgresql":
            raise CheckSetupError(f"the dashboards' SQL is PostgreSQL's; {backend} URLs cannot be checked")
        self.engine = create_engine(url, pool_pre_ping=True)

    def run(self, sql: str) -> tuple[list[str], list[tuple]]:
        with self.engine.connect() as c:
            tx = c.begin()
            try:
                c.exec_driver_sql("SET TRANSACTION READ ONLY")
                c.exec_driver_sql(f"SET LOCAL statement_timeout = {QUERY_TIMEOUT_S * 1000}")
                r = c.exec_driver_sql(sql)
                return list(r.keys()), [tuple(row) for row in r.fetchall()]
            finally:
                tx.rollback()

    def close(self) -> None:
        self.engine.dispose()


class InfluxRunner:
    """InfluxQL over ``GET /query?db=...&epoch=ms``; ``token`` for InfluxDB 2.x/3.x, or a v1
    ``username``/``password``."""

    def __init__(self, url: str, db: str, *, username: str = "", password: str = "", token: str = "",
                 transport: httpx.BaseTransport | None = None):
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = httpx.BasicAuth(username, password) if username else None
        self.db = db
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, auth=auth, timeout=QUERY_TIMEOUT_S,
                                 transport=transport)

    def run(self, q: str) -> tuple[list[str], list[tuple]]:
        try:
            r = self.http.get("/query", params={"db": self.db, "q": q, "epoch": "ms"})
        except httpx.HTTPError as e:
            raise RuntimeError(f"InfluxDB unreachable: {type(e).__name__}: {e}") from None
        try:
            data = r.json()
        except ValueError:
            data = {}
        if not r.is_success:
            raise RuntimeError(f"HTTP {r.status_code}: {data.get('error') or r.text[:200]}")
        columns: list[str] = []
        rows: list[tuple] = []
        for res in data.get("results") or []:
            if "error" in res:
                raise RuntimeError(str(res["error"]))
            for series in res.get("series") or []:
                tags = series.get("tags") or {}
                cols = list(tags) + list(series.get("columns") or [])
                columns.extend(c for c in cols if c not in columns)
                for values in series.get("values") or []:
                    # a GROUP BY time() bucket with nothing in it (fill(null)) is not data
                    if any(v is not None for c, v in zip(series.get("columns") or [], values) if c != "time"):
                        rows.append(tuple(tags.values()) + tuple(values))
        return columns, rows

    def close(self) -> None:
        self.http.close()


# --------------------------------------------------------------------------- the check


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _error_text(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    return _short(str(orig) if orig is not None else f"{type(e).__name__}: {e}")


def _json_safe(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    try:
        return float(v)  # Decimal
    except (TypeError, ValueError):
        return str(v)


def _run(runner, query: str) -> tuple[Status, int, list[str], str, list[list[Any]]]:  # noqa: ANN001
    try:
        cols, rows = runner.run(query)
    except Exception as e:  # noqa: BLE001 - every failure is reported, per panel
        return "error", 0, [], _error_text(e), []
    sample = [[_json_safe(v) for v in r] for r in rows[:SAMPLE_ROWS]]
    return ("ok" if rows else "no_data"), len(rows), cols, "", sample


def _resolve_variables(dash: dict[str, Any], given: Mapping[str, Sequence[str]], tr: TimeRange,
                       types: Mapping[str, str], runners: Mapping[Dialect, Any],
                       results: list[PanelResult]) -> dict[str, Variable]:
    resolved: dict[str, Variable] = {}
    for v in (dash.get("templating") or {}).get("list") or []:
        name = str(v.get("name", ""))
        multi = bool(v.get("multi") or v.get("includeAll"))
        if name in given:
            resolved[name] = Variable(name, tuple(given[name]), multi)
            continue
        vtype = v.get("type")
        if vtype in ("custom", "constant", "textbox"):
            raw = str(v.get("query") or "")
            vals = [x.strip() for x in raw.split(",") if x.strip()] if vtype == "custom" else [raw]
            resolved[name] = Variable(name, tuple(vals), multi)
            continue
        if vtype != "query":
            continue
        ds = v.get("datasource") or {}
        dialect = dialect_of(ds, types)
        q = v.get("query")
        text = q.get("query", "") if isinstance(q, dict) else str(q or "")
        res = PanelResult(dash.get("uid", ""), dash.get("title", ""), 0, f"${name}", "variable", name,
                          str(ds.get("uid", "")), "error")
        values: list[str] = []
        if dialect is None or dialect not in runners:
            res.message = f"unknown or unconfigured datasource {ds.get('uid')!r}"
        else:
            try:
                res.query = expand_query(text, dialect, tr, resolved)
                cols, rows = runners[dialect].run(res.query)
                values = [str(r[-1] if dialect == "influxql" else r[0]) for r in rows if r and r[0] is not None]
                res.status, res.rows, res.columns = ("ok" if values else "no_data"), len(values), cols
            except Exception as e:  # noqa: BLE001
                res.message = _error_text(e)
        results.append(res)
        resolved[name] = Variable(name, tuple(values), multi)
    return resolved


def check_dashboards(
    dashboards_dir: Path,
    pg_url: str | None,
    influx_url: str | None,
    influx_db: str | None,
    time_from: dt.datetime,
    time_to: dt.datetime,
    variables: Mapping[str, Sequence[str]] | None = None,
    *,
    influx_username: str = "",
    influx_password: str = "",
    influx_token: str = "",
) -> list[PanelResult]:
    """One :class:`PanelResult` per template-variable query and per panel query (target), in
    dashboard file order. A datasource that is not configured (``pg_url`` or ``influx_url``
    None) makes its panels errors saying so. Raises :class:`CheckSetupError` when nothing can
    be checked (no dashboards, a non-PostgreSQL database URL, a bad time range)."""
    try:
        tr = TimeRange(time_from, time_to)
    except ExpandError as e:
        raise CheckSetupError(str(e)) from None
    dashboards = load_dashboards(dashboards_dir)
    types = provisioned_datasources(dashboards_dir)
    runners: dict[Dialect, Any] = {}
    results: list[PanelResult] = []
    try:
        if pg_url:
            runners["sql"] = SqlRunner(pg_url)
        if influx_url and influx_db:
            runners["influxql"] = InfluxRunner(influx_url, influx_db, username=influx_username,
                                               password=influx_password, token=influx_token)
        for _path, dash in dashboards:
            resolved = _resolve_variables(dash, variables or {}, tr, types, runners, results)
            for panel in iter_panels(dash.get("panels") or []):
                for target in panel.get("targets") or []:
                    results.append(_check_target(dash, panel, target, tr, types, runners, resolved))
    finally:
        for r in runners.values():
            r.close()
    return results


def _check_target(dash, panel, target, tr, types, runners, resolved) -> PanelResult:  # noqa: ANN001
    ds = target_datasource(panel, target)
    res = PanelResult(dash.get("uid", ""), dash.get("title", ""), int(panel.get("id") or 0),
                      str(panel.get("title", "")), str(panel.get("type", "")), str(target.get("refId", "")),
                      str(ds.get("uid", "")), "error")
    dialect = dialect_of(ds, types)
    if dialect is None:
        res.message = f"unknown datasource {ds.get('uid')!r}"
        return res
    if dialect not in runners:
        res.message = f"datasource {ds.get('uid')!r} not configured for the check"
        return res
    text = target_text(target, dialect)
    if not text.strip():
        res.message = "empty query"
        return res
    try:
        res.query = expand_query(text, dialect, tr, resolved)
    except ExpandError as e:
        res.message = str(e)
        return res
    res.status, res.rows, res.columns, res.message, res.first_rows = _run(runners[dialect], res.query)
    if res.status != "error" and dialect == "sql" and target.get("format") == "time_series" and "time" not in res.columns:
        res.status, res.message = "error", "format time_series needs a column named 'time'"
    return res


__all__ = ["PanelResult", "CheckSetupError", "check_dashboards", "load_dashboards", "iter_panels",
           "provisioned_datasources", "used_variables", "SqlRunner", "InfluxRunner"]
