"""PostgreSQL helpers shared by the end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine

from tests.conftest import TEST_POSTGRES_URL


def kill_db_connections(database_url: str, server_pid: int) -> int:
    """Terminate the PostgreSQL backends of the server process only (other tests may share the
    database): its TCP connections to the server are found in /proc, matched on client port."""
    inodes = set()
    for fd in Path(f"/proc/{server_pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local_port = int(f[1].rsplit(":", 1)[1], 16)
            remote_port = int(f[2].rsplit(":", 1)[1], 16)
            if remote_port == 5432 and f[9] in inodes:
                ports.append(local_port)
    assert ports, "the server holds no connection to PostgreSQL"
    engine = create_engine(TEST_POSTGRES_URL)
    try:
        with engine.connect() as c:
            rows = c.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                     " WHERE client_port = ANY(%(ports)s)", {"ports": ports}).all()
    finally:
        engine.dispose()
    return sum(1 for (ok,) in rows if ok)
