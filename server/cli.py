"""`crp db`: database migrations."""

from __future__ import annotations

from typing import Optional

import typer

db_app = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade_cmd(database_url: Optional[str] = typer.Option(None, help="Defaults to DATABASE_URL / CRP_DATABASE_URL."),
                revision: str = typer.Option("head", help="Target revision.")) -> None:
    """Migrate the database to the latest schema (safe to run again)."""
    from .db import current_revision, upgrade
    from .settings import ServerSettings

    url = database_url or ServerSettings().database_url
    upgrade(url, revision)
    typer.echo(f"{url}: at revision {current_revision(url)}")


@db_app.command("current")
def current_cmd(database_url: Optional[str] = typer.Option(None)) -> None:
    """Print the database's current revision."""
    from .db import current_revision
    from .settings import ServerSettings

    typer.echo(current_revision(database_url or ServerSettings().database_url) or "(empty)")
