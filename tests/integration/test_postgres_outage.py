"""PostgreSQL stopped: the APIs answer 503 NOT_READY (never a 500), /health stays up, /ready says
what is down; when PostgreSQL returns, everything recovers without a restart, and nothing written
before the outage is lost."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from infra.composition import build_http_app, build_system
from infra.http import BREAKER_OPEN_SECONDS
from tests.conftest import embedded_settings
from tests.e2e.helpers import assert_error, create_project, signed_in
from tests.services import PrivatePostgres


@pytest.fixture
def postgres():
    server = PrivatePostgres()
    server.start()
    yield server
    server.remove()


def test_the_apis_answer_503_while_postgres_is_down_and_recover_when_it_returns(postgres, tmp_path):
    system = build_system(embedded_settings(tmp_path / "data", database_url=postgres.url))
    with TestClient(build_http_app(system), raise_server_exceptions=False) as client:
        ada = signed_in(client)
        project = create_project(ada)["data"]

        postgres.stop()
        assert_error(ada.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "during"}), 503, "NOT_READY")
        down = ada.get(f"/api/v1/projects/{project['id']}")
        assert_error(down, 503, "NOT_READY")
        assert down.headers["Retry-After"] == "1"
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert {d["field"] for d in ready.json()["error"]["details"]} >= {"eventStore", "readModels"}
        assert client.get("/health").status_code == 200
        # A refresh needs the user from the event store: 503 too, and the session is not lost.
        assert_error(client.post("/api/v1/auth/refresh", json={"refreshToken": ada.tokens["refreshToken"]}), 503,
                     "NOT_READY")

        postgres.start()
        time.sleep(BREAKER_OPEN_SECONDS)  # after a 503 the API refuses at once for a moment
        created = ada.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "after"})
        assert created.status_code == 201, created.text
        listed = ada.read(f"/api/v1/projects/{project['id']}/tasks", created.json()["meta"]["position"])
        assert [t["title"] for t in listed.json()["data"]] == ["after"]
        assert client.get("/ready").status_code == 200
        refreshed = client.post("/api/v1/auth/refresh", json={"refreshToken": ada.tokens["refreshToken"]})
        assert refreshed.status_code == 200, refreshed.text
    system.close()
