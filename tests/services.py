"""The real servers tests run against, as started by `scripts/services up` (see scripts/test).

Their addresses come from TASKFLOW_TEST_* variables. When one is missing, tests that need it are
skipped, unless TASKFLOW_REQUIRE_SERVICES=1 (set by scripts/test and so by CI): then they fail,
so a run that silently tested nothing cannot pass."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest


def service_url(name: str) -> str:
    url = os.environ.get(f"TASKFLOW_TEST_{name}")
    if not url:
        message = f"TASKFLOW_TEST_{name} is not set: run the suite with scripts/test (it starts the services)"
        if os.environ.get("TASKFLOW_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server, dropped afterwards."""
    import psycopg

    admin_url = service_url("DATABASE_URL")
    name = f"taskflow_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        _drop_database(admin_url, name)


def _drop_database(admin_url: str, name: str) -> None:
    import time

    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for attempt in range(50):
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except psycopg.errors.InsufficientPrivilege:
                # An autovacuum worker is in the database: PostgreSQL 15 lets only a superuser (or
                # pg_signal_backend) end it, so wait for it to finish.
                if attempt == 49:
                    raise
                time.sleep(0.1)


class PrivatePostgres:
    """A PostgreSQL server of the test's own (Debian's binaries, a fresh cluster in a temporary
    directory, a free port), so a test can stop and restart it without disturbing other tests."""

    BIN = "/usr/lib/postgresql/15/bin"

    def __init__(self) -> None:
        import shutil
        import socket
        import tempfile

        if not Path(self.BIN, "initdb").exists():
            pytest.fail("PostgreSQL binaries not found: run scripts/services up (it installs them)")
        self.dir = Path(tempfile.mkdtemp(prefix="taskflow-pg-"))
        self.data = self.dir / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql://taskflow@127.0.0.1:{self.port}/postgres"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(f"{self.BIN}/initdb", "-D", str(self.data), "-A", "trust", "-U", "taskflow", "--no-sync")

    def _run(self, *args: str) -> None:
        import subprocess

        subprocess.run([*self._as_postgres, *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(f"{self.BIN}/pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        self._run(f"{self.BIN}/pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        import shutil

        try:
            self.stop()
        except Exception:  # already stopped
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A Redis server of the test's own (Debian's redis-server, a free port, an append-only file
    in a temporary directory so its data survives a restart), to stop and restart at will."""

    def __init__(self) -> None:
        import shutil
        import socket
        import tempfile

        if shutil.which("redis-server") is None:
            pytest.fail("redis-server not found: run scripts/services up (it installs it)")
        self.dir = Path(tempfile.mkdtemp(prefix="taskflow-redis-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: Any = None

    def start(self) -> None:
        import subprocess
        import time

        import redis

        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()  # SIGTERM: Redis finishes its append-only file and exits
            self._process.wait(timeout=30)
            self._process = None

    def remove(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
