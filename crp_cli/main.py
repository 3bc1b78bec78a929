"""`crp`: one command for every part. Sub-commands import their part only when they run, so
`crp gateway` on a workshop board never loads the server."""

from __future__ import annotations

import importlib
from typing import Optional

import click
import typer
from typer.core import TyperGroup

# name -> (module, attribute, help): Typer apps mounted lazily.
LAZY_APPS: dict[str, tuple[str, str, str]] = {
    "gateway": ("gateway.cli", "app", "Run the workshop gateway or inspect its store."),
    "sim": ("firmware_sim.cli", "app", "Simulated machine nodes (a workshop day)."),
    "db": ("server.cli", "db_app", "Database migrations."),
    "billing": ("server.billing.cli", "app", "Billing runs and exports."),
    "alerts": ("server.maintenance.cli", "app", "Maintenance alerts (list, evaluate, dispatch)."),
    "dashboards": ("server.dashboards.cli", "app", "Grafana dashboards: check every panel query, push."),
    "users": ("server.security.cli", "users_app", "People who log in (roles)."),
    "devices": ("server.security.cli", "devices_app", "MQTT devices (nodes, gateways)."),
    "broker": ("server.security.cli", "broker_app", "Mosquitto password file, ACL, config."),
}


class LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_APPS))

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name in LAZY_APPS:
            mod, attr, help_text = LAZY_APPS[name]
            try:
                sub = getattr(importlib.import_module(mod), attr)
            except (ImportError, AttributeError) as e:
                reason = str(e)  # ``e`` itself is gone once the except block ends

                @click.command(name=name, help=f"{help_text} (unavailable: {reason})")
                def unavailable() -> None:
                    raise click.ClickException(f"'{name}' is not available in this installation: {reason}")
                return unavailable
            cmd = typer.main.get_command(sub)
            cmd.name = name
            cmd.help = cmd.help or help_text
            return cmd
        return super().get_command(ctx, name)


app = typer.Typer(cls=LazyGroup, no_args_is_help=True, add_completion=False,
                  help="CRP Workshop Tracker: machine usage, hourly billing and maintenance.")


@app.command()
def server(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
           port: int = typer.Option(8000, help="Port to listen on.")) -> None:
    """Run the API server (settings from the environment / .env)."""
    from server.__main__ import run

    try:
        run(host=host, port=port)
    except RuntimeError as e:  # refused to start (e.g. a default secret outside demo mode)
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None


@app.command()
def demo(once: bool = typer.Option(False, "--once", help="Exit after the summary instead of serving the API."),
         json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
         date: Optional[str] = typer.Option(None, help="Day to play (YYYY-MM-DD); default today at the site."),
         seed: int = typer.Option(7, help="Scenario seed: the same seed plays the same day."),
         speed: float = typer.Option(720.0, help="Simulated seconds per real second."),
         port: int = typer.Option(8000, help="API port."),
         lang: str = typer.Option("fr", help="Summary language (fr or en).")) -> None:
    """Play a simulated workshop day through broker, gateway and server, then summarise it."""
    from .demo import run_demo

    raise typer.Exit(run_demo(once=once, json_out=json_out, date=date, seed=seed, speed=speed, port=port,
                              lang=lang))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
