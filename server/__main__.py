"""``python -m server``: check secrets, migrate, serve."""

from __future__ import annotations

import argparse
import sys

from .settings import InsecureSettingsError, ServerSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def run(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, settings: ServerSettings | None = None) -> None:
    """Refuse to start with default secrets outside demo mode, migrate to head, serve."""
    import uvicorn

    from .app import create_app
    from .db import upgrade

    settings = settings or ServerSettings()
    settings.check_secrets()
    upgrade(settings.database_url)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m server", description="CRP Workshop Tracker server")
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    a = p.parse_args(argv)
    try:
        run(a.host, a.port)
    except InsecureSettingsError as e:
        print(e, file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
