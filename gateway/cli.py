"""`crp gateway`: run the workshop gateway, or inspect its store."""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path
from typing import Optional

import typer

from .settings import GatewaySettings, InsecureDefaults

app = typer.Typer(help="Workshop gateway: badge decisions, spool, forwarding.", invoke_without_command=True)


@app.callback()
def run(ctx: typer.Context,
        data_dir: Optional[Path] = typer.Option(None, help="Folder for the gateway's store (CRP_DATA_DIR)."),
        clock: Optional[str] = typer.Option(None, help="Clock spec: 'system' or 'scaled:REAL:SIM:SPEED'."),
        verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Run the gateway until Ctrl-C (settings from the environment / .env, prefix CRP_)."""
    if ctx.invoked_subcommand is not None:
        return
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    overrides = {k: v for k, v in (("data_dir", data_dir), ("clock", clock)) if v is not None}
    settings = GatewaySettings(**overrides)
    try:
        settings.check_secrets()
    except InsecureDefaults as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    from .service import Gateway

    gw = Gateway(settings)
    # Everything loaded so far (modules, snapshot, restored state) lives as long as the process:
    # keep it out of the cyclic collector's full passes, which otherwise pause every thread
    # (a badge decision included) for longer as the heap grows.
    gc.freeze()
    gw.run_forever()


@app.command("dead-letters")
def dead_letters(data_dir: Path = typer.Option(Path("./gateway-data")), limit: int = 50) -> None:
    """Show refused MQTT messages with their reasons (newest first)."""
    from .spool import Spool

    sp = Spool(data_dir / "gateway.db")
    typer.echo(json.dumps({"counts": sp.dead_letter_counts(), "latest": sp.dead_letters(limit)}, indent=1))


@app.command("status")
def status(data_dir: Path = typer.Option(Path("./gateway-data"))) -> None:
    """Counters and what is still waiting to be forwarded."""
    from .spool import Spool

    sp = Spool(data_dir / "gateway.db")
    typer.echo(json.dumps({"pending": sp.pending_count(), "stored": sp.count(), "counters": sp.counters(),
                           "dead_letters": sp.dead_letter_counts()}, indent=1))
