"""Operators and projections: the admin routes report each projection and its dead letters from
shared storage (a read API that runs no projector answers the same), and `taskflow projections`
retries or skips a dead-lettered event in another process while the projector runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient

from infra.composition import build_http_app, build_system
from projections.registry import all_projections
from tests.e2e.helpers import assert_error, create_project, create_task, make_admin, signed_in
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)
from tests.integration.poison import RaisesOn

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def poison_later_changes_of(system, task_id: str, after: int) -> RaisesOn:
    """The tasks projection's handlers raise on the task's events after position ``after``."""
    runner = next(r for r in system.projector.runners if r.name == "tasks")
    runner.projection = RaisesOn(
        runner.projection, lambda event, position: str(event.originator_id) == task_id and position > after)
    return runner.projection


def a_dead_letter_and_a_parked_event(system, client):
    """An admin, and a task whose first change is dead-lettered and second change parked."""
    admin = make_admin(system, client)
    project = create_project(admin)["data"]["id"]
    created = create_task(admin, project, title="Original")
    task = created["data"]["id"]
    poison = poison_later_changes_of(system, task, created["meta"]["position"])
    first = admin.patch(f"/api/v1/tasks/{task}", json={"title": "First change"}).json()["meta"]["position"]
    second = admin.patch(f"/api/v1/tasks/{task}", json={"title": "Second change"}).json()["meta"]["position"]
    wait_for(lambda: system.store.position("tasks") >= second, "the tasks projection to pass the changes")
    return admin, task, first, second, poison


def test_the_projections_routes_need_an_admin(client, system):
    assert_error(client.get("/api/v1/admin/projections"), 401, "UNAUTHORIZED")
    user = signed_in(client)
    assert_error(user.get("/api/v1/admin/projections"), 403, "FORBIDDEN")
    assert_error(user.get("/api/v1/admin/projections/tasks/dead-letters"), 403, "FORBIDDEN")
    admin = make_admin(system, client)
    assert_error(admin.get("/api/v1/admin/projections/nope"), 404, "NOT_FOUND")
    assert_error(admin.get("/api/v1/admin/projections/nope/dead-letters"), 404, "NOT_FOUND")


def test_a_read_api_without_a_projector_reports_the_dead_letter_from_shared_storage(client, system, settings):
    admin, task, first, second, _ = a_dead_letter_and_a_parked_event(system, client)
    elsewhere = build_system(settings)  # another read-API process: no projector, no runner state
    try:
        with TestClient(build_http_app(elsewhere, write=False, run_projector=False),
                        raise_server_exceptions=False) as reader:
            response = reader.get("/api/v1/admin/projections", headers=admin.headers)
            assert response.status_code == 200, response.text
            body = response.json()
            listed = {p["name"]: p for p in body["data"]}
            assert set(listed) == {p.name for p in all_projections()} | {"search"}
            tasks = listed["tasks"]
            assert tasks["state"] == "degraded"
            assert (tasks["deadLetters"], tasks["parkedEvents"]) == (1, 1)
            assert tasks["appliedPosition"] >= second and tasks["lag"] == tasks["headPosition"] - tasks["appliedPosition"]
            assert tasks["store"] == ("postgres" if settings.database_url else "sqlite")
            assert tasks["cached"] is bool(settings.redis_url) and tasks["feed"] == "log"
            assert listed["search"]["store"] == ("elasticsearch" if settings.elasticsearch_url else "sqlite")
            assert body["meta"]["headPosition"] >= second and body["meta"]["relay"] is None

            letters = reader.get("/api/v1/admin/projections/tasks/dead-letters", headers=admin.headers).json()
            assert letters["meta"]["total"] == 2
            dead, parked = letters["data"]
            assert (dead["position"], dead["status"], dead["aggregateId"], dead["attempts"]) == (first, "open", task, 1)
            assert dead["eventType"] == "domain.task:Task.Updated" and "handler bug" in dead["error"]
            assert dead["firstFailedAt"].endswith("Z")
            assert (parked["position"], parked["status"], parked["blockedBy"]) == (second, "parked", first)
            one = reader.get("/api/v1/admin/projections/tasks", headers=admin.headers).json()["data"]
            assert one["state"] == "degraded"
    finally:
        elsewhere.close()


def cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`taskflow ...` in its own process, on the same backends as ``settings``."""
    variables = {"TASKFLOW_DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url,
                 "REDIS_URL": settings.redis_url, "REDIS_PREFIX": settings.redis_prefix,
                 "ELASTICSEARCH_URL": settings.elasticsearch_url,
                 "ELASTICSEARCH_INDEX_PREFIX": settings.elasticsearch_index_prefix,
                 "JWT_PRIVATE_KEY": settings.jwt_private_key}
    env = {k: v for k, v in os.environ.items() if k not in variables and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({k: v for k, v in variables.items() if v}, PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING")
    return subprocess.run([sys.executable, "-m", "infra.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_cli_reports_retries_and_skips_dead_letters_while_the_projector_runs(client, system, settings):
    admin, task, first, second, poison = a_dead_letter_and_a_parked_event(system, client)
    status = cli(settings, "projections", "status")
    assert status.returncode == 0, status.stderr
    line = next(row for row in status.stdout.splitlines() if row.startswith("tasks "))
    assert line.split()[-3:] == ["degraded", "1", "1"]
    listing = cli(settings, "projections", "dead-letters", "tasks")
    assert listing.returncode == 0, listing.stderr
    assert f"{first} open" in " ".join(listing.stdout.split()) and f"waits behind {first}" in listing.stdout

    # The CLI runs the fixed code (it has no poison); the projector keeps running meanwhile.
    poison.fixed = True
    retried = cli(settings, "projections", "retry", "tasks", str(first))
    assert retried.returncode == 0, retried.stderr
    assert f"applied: {first}, {second}" in retried.stdout
    shown = admin.get(f"/api/v1/tasks/{task}")
    assert shown.json()["data"]["title"] == "Second change"  # through the row cache in production

    again = cli(settings, "projections", "retry", "tasks", str(first))
    assert (again.returncode, again.stderr.strip()) == (1, f"error: the dead letter at position {first} is already retried")
    unknown = cli(settings, "projections", "skip", "nope", "1")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: unknown projection 'nope'")
    missing = cli(settings, "projections", "skip", "tasks", "1")
    assert missing.returncode == 1 and "no dead letter at position 1" in missing.stderr
    assert system.operations.status("tasks").state in ("caught-up", "lagging")
    assert system.operations.status("tasks").dead_letters == 0
