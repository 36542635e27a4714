"""A frontend's session against TaskFlow deployed as separate processes on every production
backend: ``taskflow write-api --workers 2``, ``taskflow read-api``, ``taskflow relay`` and
``taskflow project`` (every projection, search included) on PostgreSQL, Redis, Elasticsearch and
Kafka, sharing only the data directory's signing key and the servers.

The client sends its commands to the write API and its reads to the read API, as a frontend
behind a router would, and relies on ``X-Consistency-Position`` to read its own writes; the
projector process is killed (SIGKILL) mid-session and started again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_elasticsearch_prefix
from tests.e2e.helpers import Actor, add_comment, add_member, assert_error, create_project, create_task, signed_in
from tests.services import fresh_postgres_database, service_url

pytest.importorskip("kafka")

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FrontendClient(httpx.Client):
    """Reads (GET, HEAD) go to the read API, everything else to the write API."""

    def __init__(self, write_url: str, read_url: str):
        super().__init__(timeout=30)
        self.write_url, self.read_url = write_url, read_url

    def request(self, method: str, url: Any, **kw: Any) -> httpx.Response:  # type: ignore[override]
        base = self.read_url if method.upper() in ("GET", "HEAD") else self.write_url
        return super().request(method, base + str(url), **kw)


class Deployment:
    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs = env, logs
        self.write_port, self.read_port = free_port(), free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *command: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen([sys.executable, "-m", "infra.cli", *command], cwd=ROOT,
                                                env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> dict[str, int]:
        for process in self.processes.values():
            process.terminate()
        return {name: process.wait(timeout=30) for name, process in self.processes.items()}

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def wait_ready(self, url: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = httpx.get(f"{url}/ready", timeout=5)
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                logs = {name: self.log(name)[-2000:] for name in self.processes}
                pytest.fail(f"{url} not ready: {logs}")
            time.sleep(0.2)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with fresh_postgres_database() as database_url, fresh_elasticsearch_prefix() as index_prefix:
        env = {k: v for k, v in os.environ.items() if k != "PORT"}
        run = uuid.uuid4().hex[:12]
        env.update({
            "PYTHONPATH": str(ROOT), "TASKFLOW_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
            "REDIS_URL": service_url("REDIS_URL"), "REDIS_PREFIX": f"test-{run}:",
            "ELASTICSEARCH_URL": service_url("ELASTICSEARCH_URL"), "ELASTICSEARCH_INDEX_PREFIX": index_prefix,
            "KAFKA_BOOTSTRAP_SERVERS": service_url("KAFKA_BOOTSTRAP_SERVERS"), "KAFKA_TOPIC": f"taskflow-test-{run}",
            "KAFKA_GROUP_PREFIX": f"taskflow-test-{run}-", "PROJECTOR_POLL_SECONDS": "0.2",
            "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "64",
            "RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0",
            # The projector's consumer groups form in the first seconds, and one is restarted mid-test.
            "CONSISTENCY_WAIT_DEFAULT_MS": "30000", "CONSISTENCY_WAIT_MAX_MS": "30000",
        })
        deployed = Deployment(env, tmp_path)
        deployed.start("write-api", "write-api", "--port", str(deployed.write_port), "--workers", "2")
        deployed.start("read-api", "read-api", "--port", str(deployed.read_port))
        deployed.start("relay", "relay")
        deployed.start("project", "project")
        try:
            yield deployed
        finally:
            codes = deployed.stop()
            # uvicorn ends a graceful shutdown by re-raising SIGTERM, so an API's exit status may be -15.
            failed = {name: (code, deployed.log(name)[-3000:]) for name, code in codes.items()
                      if code != 0 and not (name.endswith("-api") and code == -signal.SIGTERM)}
            assert not failed, failed


def test_a_frontend_session_against_the_separate_processes_on_every_production_backend(deployment):
    write_url = f"http://127.0.0.1:{deployment.write_port}"
    read_url = f"http://127.0.0.1:{deployment.read_port}"
    for url in (write_url, read_url):
        ready = deployment.wait_ready(url)["data"]
        assert {"eventStore", "readModels", "state", "search"} <= set(ready["checks"]), ready
        assert all(state == "ok" for state in ready["checks"].values()), ready

    with FrontendClient(write_url, read_url) as client:
        ada, bob, eve = (signed_in(client, name=n) for n in ("Ada", "Bob", "Eve"))
        # A token the write API signed is accepted by the read API (one key ring, one data directory).
        me = ada.read(f"/api/v1/users/{ada.id}", ada.position)
        assert me.status_code == 200, me.text
        assert me.json()["data"]["name"] == "Ada"

        project = create_project(ada, name="Apollo", key="APO")["data"]
        added = add_member(ada, project["id"], bob, "member")
        tasks = [create_task(ada, project["id"], title=title, labels=labels, priority=priority)
                 for title, labels, priority in (("Fix search ranking", ["bug"], "high"),
                                                 ("Write the release notes", ["docs"], "low"),
                                                 ("Search indexing is slow", ["bug", "perf"], "urgent"))]
        ranking = tasks[0]["data"]

        # Optimistic concurrency across the two write-API workers: one stale If-Match loses.
        moved = ada.patch(f"/api/v1/tasks/{ranking['id']}", json={"status": "in_progress", "assigneeIds": [bob.id]},
                          headers={"If-Match": '"1"'})
        assert moved.status_code == 200, moved.text
        assert_error(bob.patch(f"/api/v1/tasks/{ranking['id']}", json={"title": "Stale"}, headers={"If-Match": '"1"'}),
                     412, "PRECONDITION_FAILED")
        assert_error(ada.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": ""}), 400, "VALIDATION_FAILED")
        comment = add_comment(bob, ranking["id"], body="The ranking ignores typos")

        # Read-your-writes through Kafka: each read waits for the write's position.
        position = comment["meta"]["position"]
        task = bob.read(f"/api/v1/tasks/{ranking['id']}", position)
        assert task.status_code == 200, task.text
        assert task.headers["ETag"] == f'"{task.json()["data"]["version"]}"'
        assert (task.json()["data"]["status"], task.json()["data"]["assigneeIds"]) == ("in_progress", [bob.id])
        board = ada.read(f"/api/v1/projects/{project['id']}/tasks?filter[labels]=bug&sort=title", position)
        assert [t["title"] for t in board.json()["data"]] == ["Fix search ranking", "Search indexing is slow"]
        comments = bob.read(f"/api/v1/tasks/{ranking['id']}/comments", position).json()["data"]
        assert [c["body"] for c in comments] == ["The ranking ignores typos"]
        members = ada.read(f"/api/v1/projects/{project['id']}/members", added["meta"]["position"]).json()["data"]
        assert {m["userId"] for m in members} == {ada.id, bob.id}

        # Search on Elasticsearch, fed through Kafka: typo-tolerant, highlighted, faceted, scoped.
        found = bob.read("/api/v1/search?q=serch&type=task", position).json()
        assert {h["document"]["title"] for h in found["data"]} == {"Fix search ranking", "Search indexing is slow"}
        assert found["meta"]["facets"]["priority"] == {"high": 1, "urgent": 1}
        assert any("<mark>" in text for h in found["data"] for texts in h["highlights"].values() for text in texts)
        assert eve.read("/api/v1/search?q=search", position).json()["data"] == []
        assert_error(eve.read(f"/api/v1/tasks/{ranking['id']}", position), 404, "NOT_FOUND")

        # The projector dies without a chance to clean up; writes go on; a new one catches up.
        deployment.kill("project")
        renamed = ada.patch(f"/api/v1/tasks/{ranking['id']}", json={"title": "Fix search ranking for typos"})
        assert renamed.status_code == 200, renamed.text
        later = create_task(ada, project["id"], title="Search the comments too")
        deployment.start("project", "project")
        position = later["meta"]["position"]
        titles = ada.read(f"/api/v1/projects/{project['id']}/tasks?sort=title", position)
        assert titles.status_code == 200, titles.text
        assert [t["title"] for t in titles.json()["data"]] == [
            "Fix search ranking for typos", "Search indexing is slow", "Search the comments too",
            "Write the release notes"]
        again = bob.read(f"/api/v1/tasks/{ranking['id']}", position)
        assert again.json()["data"]["title"] == "Fix search ranking for typos"  # not the cached row
        assert {h["id"] for h in ada.read("/api/v1/search?q=comments", position).json()["data"]} == {
            later["data"]["id"]}
