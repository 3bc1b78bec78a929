"""``crp users``, ``crp devices`` and ``crp broker``: people who log in, MQTT devices and the
Mosquitto files.

    crp users add --username awa --role artisan --artisan-id 3 --password-stdin
    crp devices add --kind node --id node-bs1 --site DKR --machine bandsaw-1
    crp devices add --kind gateway --id gw-dkr --site DKR
    crp broker config --out deploy/mosquitto/generated

Bad input prints a clear message and exits with status 2; nothing is changed. Device passwords
are printed once and never stored (only their Mosquitto hash)."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from crp_common.i18n import tr

users_app = typer.Typer(no_args_is_help=True, add_completion=False, help="People who log in (roles).")
devices_app = typer.Typer(no_args_is_help=True, add_completion=False, help="MQTT devices (nodes, gateways).")
broker_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Mosquitto password file, ACL, config.")

EXIT_BAD_INPUT = 2


# A callback keeps each app a group (``crp users add``) even with a single command.
@users_app.callback()
def _users() -> None:
    """People who log in: manager, technician, artisan."""


@devices_app.callback()
def _devices() -> None:
    """MQTT devices: one broker user per node and per gateway."""


@broker_app.callback()
def _broker() -> None:
    """Mosquitto files rendered from the provisioned devices."""
DbUrl = typer.Option(None, "--database-url", help="Default: CRP_DATABASE_URL.")
Lang = typer.Option(None, "--lang", help="Message language (fr or en).")


def _cli_actor():  # noqa: ANN202
    from .principal import MANAGER, Principal

    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001  (no login name in a container)
        who = "unknown"
    return Principal(kind="cli", name=f"cli:{who}", role=MANAGER)


def _session(database_url: str | None):  # noqa: ANN202
    from server.db import make_engine, make_sessionmaker
    from server.settings import ServerSettings

    engine = make_engine(database_url or ServerSettings().database_url)
    return engine, make_sessionmaker(engine)()


def _guarded(fn, lang: str | None):  # noqa: ANN001, ANN202
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from server.errors import ApiError

    try:
        return fn()
    except ApiError as e:
        typer.echo(e.message(lang or "fr"), err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (OperationalError, ProgrammingError) as e:
        typer.echo(tr("security.cli.database_error", lang, error=str(e.orig or e).splitlines()[0]), err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


# --------------------------------------------------------------------------- users


@users_app.command("add")
def users_add(
    username: str = typer.Option(..., "--username"),
    role: str = typer.Option(..., "--role", help="manager, technician or artisan."),
    artisan_id: Optional[int] = typer.Option(None, "--artisan-id", help="For an artisan: their artisan record."),
    site: Optional[str] = typer.Option(None, "--site"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    database_url: Optional[str] = DbUrl,
    lang: Optional[str] = Lang,
) -> None:
    """Add a user. The password comes from stdin (never from the command line)."""
    from .audit import audit
    from .users import create_user

    if not password_stdin:
        typer.echo(tr("security.cli.password_stdin", lang), err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    password = sys.stdin.readline().rstrip("\r\n")
    engine, db = _session(database_url)
    try:
        def work():  # noqa: ANN202
            user = create_user(db, username, password, role, artisan_id, site)
            audit(db, _cli_actor(), "user.created", "user", user.username,
                  {"role": user.role, "artisan_id": user.artisan_id, "site": user.site})
            db.commit()
            return user

        user = _guarded(work, lang)
        typer.echo(tr("security.cli.user_added", lang, username=user.username, role=user.role))
    finally:
        db.close()
        engine.dispose()


# --------------------------------------------------------------------------- devices


@devices_app.command("add")
def devices_add(
    kind: str = typer.Option(..., "--kind", help="node, plug or gateway."),
    device_id: str = typer.Option(..., "--id", help="The device's id, also its MQTT username."),
    site: str = typer.Option(..., "--site"),
    machine: Optional[str] = typer.Option(None, "--machine", help="For a node or a plug: its machine."),
    plug_type: Optional[str] = typer.Option(None, "--plug-type", help="For a plug: tasmota, shelly1 or shelly2."),
    plug_topic: Optional[str] = typer.Option(None, "--plug-topic",
                                             help="For a plug: Tasmota %topic%, Shelly Gen1 id or Gen2 prefix."),
    json_out: bool = typer.Option(False, "--json"),
    database_url: Optional[str] = DbUrl,
    lang: Optional[str] = Lang,
) -> None:
    """Provision a device; prints its MQTT password ONCE (then re-render the broker files)."""
    from .devices import add_device

    engine, db = _session(database_url)
    try:
        def work():  # noqa: ANN202
            p = add_device(db, _cli_actor(), kind, device_id, site, machine, plug_type, plug_topic)
            db.commit()
            return p

        p = _guarded(work, lang)
        if json_out:
            typer.echo(json.dumps({"username": p.device.username, "password": p.password, "kind": p.device.kind,
                                   "site": p.device.site, "machine": p.device.machine}))
        else:
            typer.echo(tr("security.cli.device_added", lang, username=p.device.username, password=p.password))
    finally:
        db.close()
        engine.dispose()


@devices_app.command("revoke")
def devices_revoke(device_id: str = typer.Option(..., "--id"), database_url: Optional[str] = DbUrl,
                   lang: Optional[str] = Lang) -> None:
    """Remove a device from the broker files (re-render them afterwards)."""
    from .devices import revoke_device

    engine, db = _session(database_url)
    try:
        def work():  # noqa: ANN202
            d = revoke_device(db, _cli_actor(), device_id)
            db.commit()
            return d

        d = _guarded(work, lang)
        typer.echo(tr("security.cli.device_revoked", lang, username=d.username))
    finally:
        db.close()
        engine.dispose()


@devices_app.command("list")
def devices_list(database_url: Optional[str] = DbUrl, lang: Optional[str] = Lang) -> None:
    from .devices import broker_entries

    engine, db = _session(database_url)
    try:
        for d in _guarded(lambda: broker_entries(db), lang):
            plug = f"\t{d.plug_type} {d.plug_topic}" if d.kind == "plug" else ""
            typer.echo(f"{d.username}\t{d.kind}\t{d.site}\t{d.machine or ''}{plug}")
    finally:
        db.close()
        engine.dispose()


# --------------------------------------------------------------------------- broker


@broker_app.command("config")
def broker_config(
    out: Path = typer.Option(..., "--out", help="Folder to write mosquitto.conf, passwd and acl into."),
    site: Optional[str] = typer.Option(None, "--site", help="Only this site's devices."),
    port: int = typer.Option(1883, "--port"),
    bind: str = typer.Option("0.0.0.0", "--bind"),
    config_dir: str = typer.Option("/mosquitto/config", "--config-dir", help="Where the broker sees these files."),
    data_dir: str = typer.Option("/mosquitto/data", "--data-dir"),
    tls_ca: Optional[str] = typer.Option(None, "--tls-ca", help="CA certificate (as the broker sees it)."),
    tls_cert: Optional[str] = typer.Option(None, "--tls-cert"),
    tls_key: Optional[str] = typer.Option(None, "--tls-key"),
    tls_port: int = typer.Option(8883, "--tls-port"),
    tls_only: bool = typer.Option(False, "--tls-only", help="No plain listener."),
    database_url: Optional[str] = DbUrl,
    lang: Optional[str] = Lang,
) -> None:
    """Render the broker files from the provisioned devices."""
    from .broker_config import TlsFiles, render_mosquitto_conf, write_broker_files
    from .devices import broker_entries

    tls_parts = (tls_ca, tls_cert, tls_key)
    if any(tls_parts) and not all(tls_parts):
        typer.echo(tr("security.cli.tls_incomplete", lang), err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    tls = TlsFiles(tls_ca, tls_cert, tls_key, tls_port) if all(tls_parts) else None
    if tls_only and tls is None:
        typer.echo(tr("security.cli.tls_incomplete", lang), err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    engine, db = _session(database_url)
    try:
        devices = _guarded(lambda: broker_entries(db, site), lang)
    finally:
        db.close()
        engine.dispose()
    conf = render_mosquitto_conf(config_dir, data_dir, None if tls_only else port, bind, tls)
    paths = write_broker_files(out, devices, conf)
    typer.echo(tr("security.cli.broker_written", lang, count=len(devices), out=str(out)))
    for p in paths.values():
        typer.echo(f"  {p}")
