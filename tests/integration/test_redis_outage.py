"""Redis stopped: every request that needs it (the rate limit, the revocation check of a signed-in
request) answers 503 NOT_READY at once, never a 500 or a hang; /ready names the state store; when
Redis returns, the same process and the same session work again, with no restart. Redis loses its
Lua scripts when it restarts: the rate limiter's script is loaded again on first use.

Run with the rate limiter on (it meets Redis first) and off (the revocation check does). After a
503 the API answers 503 at once for BREAKER_OPEN_SECONDS without trying: each check waits that
out, so that every 503 asserted comes from Redis itself."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from infra.composition import build_http_app, build_system
from infra.http import BREAKER_OPEN_SECONDS
from tests.conftest import embedded_settings
from tests.e2e.helpers import assert_error, create_project, signed_in
from tests.services import PrivateRedis


@pytest.fixture
def redis_server():
    server = PrivateRedis()
    server.start()
    yield server
    server.remove()


@pytest.mark.parametrize("limit", [1000, 0], ids=["rate-limited", "no-rate-limit"])
def test_the_apis_answer_503_while_redis_is_down_and_recover_when_it_returns(redis_server, tmp_path, limit):
    settings = embedded_settings(tmp_path / "data", redis_url=redis_server.url,
                                 rate_limit_per_minute=limit, rate_limit_anonymous_per_minute=limit)
    system = build_system(settings)
    with TestClient(build_http_app(system), raise_server_exceptions=False) as client:
        ada = signed_in(client)
        project = create_project(ada)["data"]
        tasks = f"/api/v1/projects/{project['id']}/tasks"

        redis_server.stop()
        down = ada.post(tasks, json={"title": "during"})
        assert_error(down, 503, "NOT_READY")
        assert down.headers["Retry-After"] == "1"
        time.sleep(BREAKER_OPEN_SECONDS + 0.1)
        assert_error(ada.get(f"/api/v1/projects/{project['id']}"), 503, "NOT_READY")
        ready = client.get("/ready")  # never behind the breaker
        assert ready.status_code == 503
        assert "state" in {d["field"] for d in ready.json()["error"]["details"]}
        assert client.get("/health").status_code == 200

        redis_server.start()
        deadline = time.monotonic() + 15  # the breaker answers 503 for a moment after a failure
        while (created := ada.post(tasks, json={"title": "after"})).status_code == 503:
            assert time.monotonic() < deadline, created.text
            time.sleep(0.2)
        assert created.status_code == 201, created.text
        listed = ada.read(tasks, created.json()["meta"]["position"])
        assert [t["title"] for t in listed.json()["data"]] == ["after"]
        assert client.get("/ready").status_code == 200
    system.close()
