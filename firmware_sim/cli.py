"""`crp sim`: play a simulated workshop day against a broker and summarise it."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from crp_common.clock import ScaledClock, clock_from_spec
from crp_common.i18n import tr

from .runner import SimReport, run_scenario
from .scenario import ScenarioError, day_bounds, generate_day, without_machines
from .workshop import WorkshopError, load_workshop

DEFAULT_SPEED = 720.0
CLOCK_LEAD_S = 60.0  # simulated seconds between the start of the run and the opening
DEFAULT_STATE_DIR = Path("sim-state")

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Simulated machine nodes (a workshop day).")


@app.callback()
def main() -> None:
    """Simulated machine nodes (a workshop day)."""


def _fail(lang: str, detail: str) -> None:
    Console(stderr=True).print(f"[red]{tr('sim.error', lang, detail=detail)}[/]")
    raise typer.Exit(2)


@app.command()
def run(
    host: str = typer.Option("127.0.0.1", envvar="CRP_MQTT_HOST", help="MQTT broker host."),
    port: int = typer.Option(1883, envvar="CRP_MQTT_PORT", help="MQTT broker port."),
    username: Optional[str] = typer.Option(None, envvar="CRP_MQTT_USERNAME", help="MQTT user of the nodes."),
    password: Optional[str] = typer.Option(None, envvar="CRP_MQTT_PASSWORD", help="MQTT password of the nodes."),
    site: Optional[str] = typer.Option(None, help="Site code (default: the workshop file's)."),
    workshop: Optional[Path] = typer.Option(None, "--workshop", help="Workshop JSON (default: the demo workshop)."),
    seed: int = typer.Option(7, help="Scenario seed: the same seed plays the same day."),
    date: Optional[str] = typer.Option(None, help="Day to play, YYYY-MM-DD (default: today at the site)."),
    clock: Optional[str] = typer.Option(None, "--clock", envvar="CRP_CLOCK",
                                        help="Shared clock spec ('system' or 'scaled:REAL:SIM:SPEED'); "
                                             "default: a scaled clock starting just before opening."),
    speed: float = typer.Option(DEFAULT_SPEED, help="Simulated seconds per real second (without --clock)."),
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, help="Where the nodes keep their boot counters."),
    until: Optional[str] = typer.Option(None, help="Stop at this local time HH:MM (default: the day's end)."),
    decision_timeout: float = typer.Option(5.0, help="Real seconds a tap waits for the gateway."),
    lang: str = typer.Option("fr", help="Summary language (fr or en)."),
    plug_username: Optional[str] = typer.Option(None, envvar="CRP_PLUG_MQTT_USERNAME",
                                                help="MQTT user of the metering plugs (without it the plug "
                                                     "machines are left out)."),
    plug_password: Optional[str] = typer.Option(None, envvar="CRP_PLUG_MQTT_PASSWORD",
                                                help="MQTT password of the metering plugs."),
) -> None:
    """Play a generated workshop day: taps, work, walk-aways, a power cut..."""
    try:
        ws = load_workshop(workshop)
    except WorkshopError as e:
        _fail(lang, str(e))
    if site:
        ws = _with_site(ws, site)
    try:
        tz = ZoneInfo(ws.site.tz)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(lang, f"unknown time zone {ws.site.tz!r}")
    try:
        day = dt.date.fromisoformat(date) if date else dt.datetime.now(tz).date()
    except ValueError:
        _fail(lang, f"--date {date!r}: expected YYYY-MM-DD")
    open_ts, _ = day_bounds(day, ws.site.tz)
    if speed <= 0:
        _fail(lang, "--speed must be positive")
    try:
        clk = clock_from_spec(clock) if clock else ScaledClock(time.time(), open_ts - CLOCK_LEAD_S, speed)
    except ValueError as e:
        _fail(lang, str(e))
    stop_at = None
    if until:
        try:
            stop_at = dt.datetime.combine(day, dt.time.fromisoformat(until), tz).timestamp()
        except ValueError:
            _fail(lang, f"--until {until!r}: expected HH:MM")
    try:
        actions = generate_day(ws, day, seed)
    except ScenarioError as e:
        _fail(lang, str(e))
    now = clk.now()
    actions = [a for a in actions if a.at >= now and (stop_at is None or a.at <= stop_at)]
    err = Console(stderr=True)
    plug_creds = (plug_username, plug_password or "") if plug_username else None
    if plug_creds is None and ws.plug_machines:
        # Plugs need a broker user allowed on their topics (docs/plugs.md): play the rest.
        left = [m.id for m in ws.plug_machines]
        err.print(tr("sim.plugs_left_out", lang, n=len(left), machines=", ".join(left)))
        actions = without_machines(actions, left)
        ws = ws.without_plugs()
    err.print(tr("sim.title", lang, date=day.isoformat(), site=ws.site.name))
    err.print(tr("sim.playing", lang, n=len(actions), machines=len(ws.machines), speed=f"{clk.speed:g}"))

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  console=err, transient=True) as progress:
        task = progress.add_task(day.isoformat(), total=sum(len(a.machines()) for a in actions))

        def on_progress(done: int, total: int, at: float) -> None:
            local = dt.datetime.fromtimestamp(at, tz).strftime("%H:%M")
            progress.update(task, completed=done, description=local)

        try:
            report = run_scenario(actions, ws, host, port, username, password, clk, state_dir, on_progress,
                                  until=stop_at, decision_timeout_s=decision_timeout, plug_creds=plug_creds)
        except (OSError, RuntimeError, ScenarioError) as e:
            _fail(lang, str(e))
    print_summary(Console(), report, lang)


def _with_site(ws, code: str):
    from dataclasses import replace

    from crp_common.contract import SITE_RE

    if not SITE_RE.match(code):
        raise typer.BadParameter(f"{code!r}: 2-8 uppercase letters or digits", param_hint="--site")
    return replace(ws, site=replace(ws.site, code=code))


def print_summary(console: Console, report: SimReport, lang: str = "fr") -> None:
    t = Table(title=tr("summary.title", lang), show_header=False)
    t.add_column(justify="left")
    t.add_column(justify="right")
    for key, value in (("sim.taps", report.taps), ("sim.grants", report.grants), ("sim.ends", report.ends),
                       ("summary.denied", report.deny_total), ("sim.timeouts", report.timeouts),
                       ("sim.power_cuts", report.power_cuts), ("sim.nodes_cut", report.nodes_cut),
                       ("sim.skipped", report.skipped), ("sim.mismatches", len(report.mismatches)),
                       ("sim.messages", report.messages)):
        t.add_row(tr(key, lang), str(value))
    console.print(t)
    if report.denies:
        d = Table(title=tr("summary.denied", lang))
        d.add_column(tr("summary.reason", lang))
        d.add_column(tr("summary.count", lang), justify="right")
        for reason, n in sorted(report.denies.items()):
            d.add_row(tr(f"deny.{reason}", lang), str(n))
        console.print(d)
    console.print(tr("sim.late", lang, s=f"{report.max_late_s:.1f}"))
