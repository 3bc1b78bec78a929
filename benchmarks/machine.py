"""What the figures were measured on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from .harness import mosquitto_version


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe() -> dict[str, Any]:
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "ram_gb": _ram_gb(),
            "python": platform.python_version(), "mosquitto": mosquitto_version(),
            "os": f"{platform.system()} {platform.release()}", "load_average_at_start": load_average()}


def postgres_version(url: str) -> str:
    """``PostgreSQL 15.19`` of the server at ``url`` (or why it could not be read)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return "PostgreSQL " + str(c.execute(text("SHOW server_version")).scalar()).split()[0]
    except Exception as e:  # noqa: BLE001 - the billing benchmark will report the failure itself
        return f"PostgreSQL (unreachable: {type(e).__name__})"
    finally:
        engine.dispose()
