"""``crp dashboards``: check every panel query against the databases, push the dashboards to a
Grafana, compute availability (and write it to InfluxDB for the dashboards).

    crp dashboards check [--dashboards DIR] [--database-url URL] [--influx-url URL]
                         [--influx-db DB] [--from now-7d] [--to now] [--site DKR] [--json]
    crp dashboards push --grafana-url URL --token TOKEN [--folder CRP]
    crp dashboards availability --from 2026-03-01 --to 2026-03-31 [--site DKR] [--write-influx]

Exit status: 0 fine; 1 a panel query failed (``check``; with ``--require-data`` also a panel
without data) or Grafana refused (``push``); 2 bad input or a setup that cannot be checked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from pathlib import Path
from typing import List, Optional

import typer

from crp_common.i18n import normalize_lang, tr

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Grafana dashboards: check the panel queries, push to a Grafana, availability.")

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
DEFAULT_DASHBOARDS_DIR = "dashboards"
DEFAULT_FROM = "now-7d"
_RELATIVE_RE = re.compile(r"^now(?:-(\d+)([smhdw]))?$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def parse_time(value: str, now: dt.datetime) -> dt.datetime:
    """``now``, ``now-7d`` (s, m, h, d, w), an ISO date (UTC midnight) or an ISO datetime (UTC
    when it has no offset)."""
    v = value.strip()
    m = _RELATIVE_RE.match(v)
    if m:
        return now - dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))}) if m.group(1) else now
    try:
        if len(v) == 10:
            d = dt.date.fromisoformat(v)
            return dt.datetime.combine(d, dt.time(0), dt.timezone.utc)
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(v) from None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _dashboards_dir(value: Optional[Path]) -> Path:
    return value or Path(os.environ.get("CRP_DASHBOARDS_DIR") or DEFAULT_DASHBOARDS_DIR)


@app.command("check")
def check(
    dashboards: Optional[Path] = typer.Option(None, "--dashboards", help="Dashboards folder (default: CRP_DASHBOARDS_DIR or ./dashboards)."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="PostgreSQL URL (default: CRP_DATABASE_URL)."),
    influx_url: Optional[str] = typer.Option(None, "--influx-url", help="InfluxDB URL (default: CRP_INFLUX_URL)."),
    influx_db: Optional[str] = typer.Option(None, "--influx-db", help="InfluxQL database (default: CRP_INFLUX_DB)."),
    influx_username: str = typer.Option("", "--influx-username", envvar="CRP_CHECK_INFLUX_USERNAME", help="InfluxDB v1 user."),
    influx_password: str = typer.Option("", "--influx-password", envvar="CRP_CHECK_INFLUX_PASSWORD", help="InfluxDB v1 password."),
    influx_token: str = typer.Option("", "--influx-token", envvar="CRP_CHECK_INFLUX_TOKEN", help="InfluxDB 2.x/3.x token."),
    time_from: str = typer.Option(DEFAULT_FROM, "--from", help="Start: now-7d, 2026-03-01, 2026-03-01T08:00:00Z."),
    time_to: str = typer.Option("now", "--to", help="End, same forms."),
    site: Optional[List[str]] = typer.Option(None, "--site", help="Site code (repeatable; default: every site)."),
    machine: Optional[List[str]] = typer.Option(None, "--machine", help="Machine id (repeatable; default: every machine)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    require_data: bool = typer.Option(False, "--require-data", help="A panel without data fails too."),
    lang: Optional[str] = typer.Option(None, "--lang", help="Output language (fr or en)."),
) -> None:
    """Run every panel query of every dashboard and say, per panel, whether it returned data."""
    from .check import CheckSetupError, check_dashboards

    ui = normalize_lang(lang)
    now = dt.datetime.now(dt.timezone.utc)
    try:
        start, end = parse_time(time_from, now), parse_time(time_to, now)
    except ValueError as e:
        _fail(tr("dashboards.cli.bad_time", ui, value=str(e)))
    pg_url = database_url
    if pg_url is None:
        from server.settings import ServerSettings

        pg_url = ServerSettings().database_url
    if influx_url is None or influx_db is None:
        from server.telemetry.settings import InfluxSettings

        s = InfluxSettings()
        influx_url = influx_url or s.url
        influx_db = influx_db or s.db
    variables = {}
    if site:
        variables["site"] = site
    if machine:
        variables["machine"] = machine
    try:
        results = check_dashboards(_dashboards_dir(dashboards), pg_url, influx_url, influx_db, start, end, variables,
                                   influx_username=influx_username, influx_password=influx_password,
                                   influx_token=influx_token)
    except CheckSetupError as e:
        _fail(tr("dashboards.cli.setup_error", ui, error=str(e)))
    failed = [r for r in results if r.status == "error" or (require_data and r.status == "no_data")]
    if json_out:
        sys.stdout.write(json.dumps([r.as_dict() for r in results], ensure_ascii=False) + "\n")
    else:
        _print_table(results, ui)
        typer.echo(tr("dashboards.cli.summary", ui, total=len(results),
                      ok=sum(r.status == "ok" for r in results),
                      no_data=sum(r.status == "no_data" for r in results),
                      errors=sum(r.status == "error" for r in results)))
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _print_table(results, ui: str) -> None:  # noqa: ANN001
    from rich.console import Console
    from rich.table import Table

    colours = {"ok": "green", "no_data": "yellow", "error": "red"}
    t = Table(show_lines=False)
    for key in ("dashboard", "panel", "ref", "datasource", "status", "rows", "detail"):
        t.add_column(tr(f"dashboards.cli.col.{key}", ui))
    for r in results:
        detail = r.message if r.status == "error" else ", ".join(r.columns)
        status = tr(f"dashboards.status.{r.status}", ui)
        t.add_row(r.dashboard, f"{r.panel_id} {r.panel_title}", r.ref_id, r.datasource,
                  f"[{colours[r.status]}]{status}[/]", str(r.rows), detail)
    Console(width=200).print(t)


@app.command("push")
def push(
    grafana_url: str = typer.Option(..., "--grafana-url", envvar="CRP_GRAFANA_URL", help="Grafana base URL."),
    token: str = typer.Option(..., "--token", envvar="CRP_GRAFANA_TOKEN", help="Grafana service account token (Editor)."),
    folder: str = typer.Option("CRP", "--folder", help="Folder title (created when missing)."),
    folder_uid: str = typer.Option("crp", "--folder-uid", help="Folder uid."),
    dashboards: Optional[Path] = typer.Option(None, "--dashboards", help="Dashboards folder."),
    lang: Optional[str] = typer.Option(None, "--lang", help="Output language (fr or en)."),
) -> None:
    """Upload every dashboard to an existing Grafana (overwriting the same uids)."""
    from .check import CheckSetupError
    from .push import PushError, push_dashboards

    ui = normalize_lang(lang)
    if not grafana_url.startswith(("http://", "https://")):
        _fail(tr("dashboards.cli.bad_url", ui, url=grafana_url))
    try:
        report = push_dashboards(_dashboards_dir(dashboards), grafana_url, token, folder_title=folder,
                                 folder_uid=folder_uid)
    except CheckSetupError as e:
        _fail(tr("dashboards.cli.setup_error", ui, error=str(e)))
    except PushError as e:
        typer.echo(tr("dashboards.cli.push_failed", ui, error=str(e)), err=True)
        raise typer.Exit(EXIT_FAILED) from None
    if report.folder_created:
        typer.echo(tr("dashboards.cli.folder_created", ui, folder=folder, uid=report.folder_uid))
    for d in report.dashboards:
        typer.echo(tr("dashboards.cli.pushed", ui, uid=d["uid"], title=d["title"]))
    for uid in report.missing_datasources:
        typer.echo(tr("dashboards.cli.missing_datasource", ui, uid=uid), err=True)


@app.command("availability")
def availability(
    time_from: str = typer.Option(..., "--from", help="First day, YYYY-MM-DD (site local)."),
    time_to: Optional[str] = typer.Option(None, "--to", help="Last day, inclusive (default: --from)."),
    site: Optional[str] = typer.Option(None, "--site", help="Site code (default: CRP_DEFAULT_SITE)."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: CRP_DATABASE_URL."),
    write_influx: bool = typer.Option(False, "--write-influx", help="Also write the points to InfluxDB (CRP_INFLUX_*)."),
    json_out: bool = typer.Option(False, "--json", help="Print the days as JSON."),
    lang: Optional[str] = typer.Option(None, "--lang", help="Output language (fr or en)."),
) -> None:
    """Availability and utilisation per machine per day over the opening hours."""
    from server.availability import AvailabilitySettings, availability_lines, site_availability
    from server.db import make_engine, make_sessionmaker
    from server.models import Site
    from server.settings import ServerSettings
    from server.timeutil import to_ms, zone

    ui = normalize_lang(lang)
    settings = ServerSettings()
    code = site or settings.default_site
    if not code:
        _fail(tr("dashboards.cli.site_required", ui))
    try:
        day_from = dt.date.fromisoformat(time_from)
        day_to = dt.date.fromisoformat(time_to) if time_to else day_from
        hours = AvailabilitySettings().for_site(code)
    except ValueError as e:
        _fail(tr("dashboards.cli.bad_input", ui, error=str(e)))
    engine = make_engine(database_url or settings.database_url)
    try:
        with make_sessionmaker(engine)() as db:
            s = db.get(Site, code)
            if s is None:
                _fail(tr("dashboards.cli.bad_input", ui, error=f"site {code}"))
            tz = zone(s.tz, settings.default_tz)
            try:
                days = site_availability(db, code, day_from, day_to, hours=hours,
                                         now_ms=to_ms(dt.datetime.now(dt.timezone.utc)))
            except (LookupError, ValueError) as e:
                _fail(tr("dashboards.cli.bad_input", ui, error=str(e)))
    finally:
        engine.dispose()
    if write_influx:
        _write_points(availability_lines(days, {code: tz}), ui)
    if json_out:
        sys.stdout.write(json.dumps([d.as_dict() for d in days], ensure_ascii=False) + "\n")
        return
    for d in days:
        typer.echo(tr("dashboards.cli.availability_row", ui, day=d.day.isoformat(), machine=d.machine,
                      availability=_pct(d.availability), utilisation=_pct(d.utilisation),
                      run=_pct(d.run_utilisation)))


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f} %"


def _write_points(lines: list[str], ui: str) -> None:
    from server.telemetry.backends import WriteFailed, WriteRefused
    from server.telemetry.settings import InfluxSettings
    from server.telemetry.writer import make_backend

    s = InfluxSettings()
    if s.mode == "off":
        _fail(tr("dashboards.cli.influx_off", ui))
    backend = make_backend(s)
    try:
        backend.write(lines)
    except (WriteFailed, WriteRefused) as e:
        typer.echo(tr("dashboards.cli.influx_failed", ui, error=str(e)), err=True)
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        backend.close()
    typer.echo(tr("dashboards.cli.influx_written", ui, n=len(lines)))
