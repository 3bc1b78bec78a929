"""The optional parts of the server (billing, maintenance, security...) plug in by convention,
each in its own package ``server/<part>/``:

- ``models.py``: tables on the shared Base (Alembic sees them: server.models.load_all_models);
- ``api.py``: a ``router`` (APIRouter) that :func:`server.app.create_app` mounts;
- ``hooks.py``: imported by create_app before serving; registers ingest hooks
  (:func:`server.ingest.on_ingested`) and snapshot contributors
  (:func:`server.snapshot_builder.on_snapshot_machines`).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def part_modules(module: str) -> list[ModuleType]:
    """Import ``server.<part>.<module>`` for every part package that has one."""
    import server

    out = []
    for info in sorted(pkgutil.iter_modules(server.__path__), key=lambda i: i.name):
        if not info.ispkg or info.name in ("api", "migrations"):
            continue
        name = f"server.{info.name}.{module}"
        try:
            out.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
    return out
