"""The real servers tests run against, as started by `scripts/services up` (see scripts/test).

Their addresses come from TASKFLOW_TEST_* variables. When one is missing, tests that need it are
skipped, unless TASKFLOW_REQUIRE_SERVICES=1 (set by scripts/test and so by CI): then they fail,
so a run that silently tested nothing cannot pass."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
