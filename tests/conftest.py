"""Shared fixtures: a TaskFlow system on the embedded default in a temporary data directory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from infra.composition import TaskFlowSystem, build_http_app, build_system
from infra.settings import Settings
from tests.services import fresh_postgres_database, service_url


def embedded_settings(data_dir: Path, **overrides: object) -> Settings:
    # Cheap Argon2 parameters keep the suite fast; production defaults are tested in test_passwords.
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": None,
        "redis_url": None,
        "elasticsearch_url": None,
        "kafka_bootstrap_servers": None,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        "projector_poll_seconds": 0.2,
        # Off unless a test is about rate limits: suites register many users from one address.
        "rate_limit_per_minute": 0,
        "rate_limit_anonymous_per_minute": 0,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def fresh_elasticsearch_prefix() -> Iterator[str]:
    """A search index prefix of the test's own on the test Elasticsearch node; its indices are
    deleted afterwards."""
    from elasticsearch import Elasticsearch

    prefix = f"taskflow-test-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        with Elasticsearch(service_url("ELASTICSEARCH_URL")) as es:
            es.indices.delete(index=f"{prefix}*", ignore_unavailable=True, allow_no_indices=True)


@pytest.fixture(params=["embedded", "production"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Every test using a TaskFlow system runs on the embedded default and on the production
    backends (real PostgreSQL, Redis and Elasticsearch servers)."""
    if request.param == "embedded":
        yield embedded_settings(tmp_path / "data")
        return
    with fresh_postgres_database() as url, fresh_elasticsearch_prefix() as index_prefix:
        yield embedded_settings(tmp_path / "data", database_url=url, redis_url=service_url("REDIS_URL"),
                                redis_prefix=f"test-{uuid.uuid4().hex[:12]}:",
                                elasticsearch_url=service_url("ELASTICSEARCH_URL"),
                                elasticsearch_index_prefix=index_prefix)


@pytest.fixture
def system(settings: Settings) -> Iterator[TaskFlowSystem]:
    built = build_system(settings)
    yield built
    built.close()


@pytest.fixture
def client(system: TaskFlowSystem) -> Iterator[TestClient]:
    # raise_server_exceptions=False: a bug must surface as the 500 envelope a client would see.
    with TestClient(build_http_app(system), raise_server_exceptions=False) as test_client:
        yield test_client
