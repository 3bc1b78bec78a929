"""``crp alerts``: maintenance alerts from the command line.

    crp alerts [--json] [--state open] [--kind fault] [--machine ID] [--database-url URL]
    crp alerts evaluate [--database-url URL]   # calendar plans, offline machines, escalation
    crp alerts dispatch [--database-url URL]   # send pending notifications once

A database that is unreachable or not migrated prints a clear message and exits with 2."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from crp_common.i18n import normalize_lang, tr

app = typer.Typer(add_completion=False, invoke_without_command=True, help="Maintenance alerts.")

EXIT_BAD_INPUT = 2
STATES = ("open", "acknowledged", "resolved")
KINDS = ("due_soon", "due", "overdue", "condition", "fault", "offline")


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _with_db(database_url: str | None, lang: str, fn):  # noqa: ANN001, ANN202
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from server.db import make_engine, make_sessionmaker
    from server.errors import ApiError
    from server.settings import ServerSettings

    url = database_url or ServerSettings().database_url
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            return fn(db)
    except ApiError as e:
        _fail(e.message(lang))
    except (OperationalError, ProgrammingError) as e:
        _fail(tr("maint.cli.database_error", lang, error=str(e.orig or e).splitlines()[0]))
    finally:
        engine.dispose()


@app.callback()
def alerts(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print the alerts as JSON."),
    state: Optional[str] = typer.Option(None, "--state", help="open, acknowledged or resolved."),
    kind: Optional[str] = typer.Option(None, "--kind", help="due_soon, due, overdue, condition, fault or offline."),
    machine: Optional[str] = typer.Option(None, "--machine", help="Only this machine."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: CRP_DATABASE_URL."),
    lang: Optional[str] = typer.Option(None, "--lang", help="fr or en."),
) -> None:
    """List maintenance alerts (newest first)."""
    if ctx.invoked_subcommand is not None:
        return
    ui = normalize_lang(lang)
    if state is not None and state not in STATES:
        _fail(tr("maint.cli.bad_choice", ui, option="--state", value=state, choices=", ".join(STATES)))
    if kind is not None and kind not in KINDS:
        _fail(tr("maint.cli.bad_choice", ui, option="--kind", value=kind, choices=", ".join(KINDS)))

    def run(db):  # noqa: ANN001, ANN202
        from sqlalchemy import select

        from server.models import Site
        from server.timeutil import zone

        from .models import Alert
        from .views import alert_out

        q = select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc())
        if state:
            q = q.where(Alert.state == state)
        if kind:
            q = q.where(Alert.kind == kind)
        if machine:
            q = q.where(Alert.machine == machine)
        rows = list(db.scalars(q))
        zones = {s.code: zone(s.tz) for s in db.scalars(select(Site))}
        return [(alert_out(a), a.raised_at.astimezone(zones.get(a.site) or zone(None))) for a in rows]

    rows = _with_db(database_url, ui, run)
    if json_out:
        sys.stdout.write(json.dumps([r for r, _ in rows], ensure_ascii=False) + "\n")
        return
    if not rows:
        typer.echo(tr("maint.cli.no_alerts", ui))
        return
    for a, local in rows:
        typer.echo(tr("maint.cli.alert_line", ui, id=a["id"], kind=tr(f"maint.kind.{a['kind']}", ui),
                      machine=a["machine"], state=tr(f"maint.state.{a['state']}", ui),
                      raised=local.strftime("%Y-%m-%d %H:%M"), cause=a["cause"]))


@app.command("evaluate")
def evaluate_cmd(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: CRP_DATABASE_URL."),
    lang: Optional[str] = typer.Option(None, "--lang"),
) -> None:
    """Run calendar plans, offline checks and escalation once, now."""
    from server.models import utcnow

    from .evaluation import evaluate

    ui = normalize_lang(lang)

    def run(db):  # noqa: ANN001, ANN202
        out = evaluate(db, utcnow())
        db.commit()
        return out

    out = _with_db(database_url, ui, run)
    typer.echo(tr("maint.cli.evaluated", ui, **out))


@app.command("dispatch")
def dispatch_cmd(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: CRP_DATABASE_URL."),
    lang: Optional[str] = typer.Option(None, "--lang"),
) -> None:
    """Send pending notifications once (channels from CRP_NOTIFY_*)."""
    from server.models import utcnow

    from .notify import dispatch

    ui = normalize_lang(lang)
    r = _with_db(database_url, ui, lambda db: dispatch(db, utcnow()))
    typer.echo(tr("maint.cli.dispatched", ui, sent=r.sent, retrying=r.retrying, failed=r.failed))
