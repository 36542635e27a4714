"""`taskflow serve` as a user starts it: a real process on a free port, then plain HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, random_email

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`taskflow serve` in a child process, restartable on the same data directory and port."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "serve.log"
        self.env = {**os.environ, "TASKFLOW_DATA_DIR": str(tmp_path / "data"), "PORT": str(self.port),
                    "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "64", "PYTHONPATH": str(ROOT)}
        for name in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL", "KAFKA_BOOTSTRAP_SERVERS"):
            self.env.pop(name, None)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("a")
        self.process = subprocess.Popen([sys.executable, "-m", "infra.cli", "serve"], env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        pytest.fail("taskflow serve did not start: " + self.log_path.read_text())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)


@pytest.fixture
def server(tmp_path):
    running = Server(tmp_path)
    running.start()
    yield running
    running.stop()


def test_serve_honours_PORT_says_where_it_listens_and_keeps_data_across_restarts(server):
    base = server.base
    email = random_email()
    created = httpx.post(f"{base}/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Ada"})
    assert created.status_code == 201
    assert f"listening on {base}" in server.log_path.read_text()
    assert httpx.get(f"{base}/ready").json()["data"]["status"] == "ready"
    old_token = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()

    server.stop()
    server.start()
    # The user, the signing key and the read models all survived the restart.
    auth = {"Authorization": f"Bearer {old_token['data']['accessToken']}"}
    profile = httpx.get(f"{base}/api/v1/auth/profile", headers=auth)
    assert profile.status_code == 200 and profile.json()["data"]["email"] == email
    user = httpx.get(f"{base}/api/v1/users/{created.json()['data']['id']}", headers=auth)
    assert user.status_code == 200 and user.json()["data"]["email"] == email


def test_serve_logs_one_json_line_per_request_with_its_request_id(server):
    httpx.get(f"{server.base}/api/v1/projects", headers={"X-Request-ID": "trace-me-123"})
    time.sleep(0.2)
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("requestId") == "trace-me-123" and line["msg"] == "request"]
    assert len(mine) == 1
    assert mine[0]["status"] == 401
    assert mine[0]["path"] == "/api/v1/projects"
    assert mine[0]["durationMs"] >= 0


def test_the_docs_and_openapi_describe_every_route(server):
    base = server.base
    spec = httpx.get(f"{base}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/users", "/api/v1/auth/login", "/api/v1/projects/{project_id}/tasks",
                 "/api/v1/tasks/{aggregate_id}/history", "/.well-known/jwks.json", "/health", "/ready"):
        assert path in spec["paths"], path
    assert "swagger" in httpx.get(f"{base}/docs").text.lower()
