"""POST /api/v1/admin/projections/{name}/rebuild: admins start a rebuild that runs in the
background of the write API and swaps the copy in; everyone else is refused."""

from __future__ import annotations

import time

from projections.registry import all_projections
from tests.e2e.helpers import assert_error, create_project, create_task, make_admin, settings, signed_in  # noqa: F401
from tests.integration.test_projections import dump
from tests.integration.test_rebuild import rebuild_rows

PATH = "/api/v1/admin/projections/{}/rebuild"


def settled(system, timeout: float = 30.0) -> None:
    head = system.app.head_position()
    deadline = time.monotonic() + timeout
    while any(system.store.position(p.name) < head for p in all_projections()):
        assert time.monotonic() < deadline, "the read models did not reach the head"
        time.sleep(0.05)


def wait_until_finished(system, projection: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = rebuild_rows(system, projection)
        if rows and rows[-1]["state"] in ("done", "failed"):
            return rows[-1]
        time.sleep(0.05)
    raise AssertionError(f"the rebuild of {projection} did not finish in {timeout} s")


def test_an_admin_starts_a_rebuild_that_swaps_in_an_equal_read_model(client, system):
    admin = make_admin(system, client)
    project = create_project(admin)["data"]
    written = create_task(admin, project["id"], title="Rebuild me")
    assert admin.read(f"/api/v1/tasks/{written['data']['id']}", written["meta"]["position"]).status_code == 200
    settled(system)  # every read model at the head, so the comparison below sees only the rebuild
    before = dump(system.store)
    response = admin.post(PATH.format("tasks"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["data"]["projection"] == "tasks" and body["data"]["state"] == "running"
    assert body["links"]["status"] == response.headers["location"] == "/api/v1/admin/projections"
    finished = wait_until_finished(system, "tasks")
    assert finished["state"] == "done", finished["error"]
    assert finished["generation"] == body["data"]["generation"]
    assert dump(system.store) == before
    assert admin.get(f"/api/v1/tasks/{written['data']['id']}").json()["data"]["title"] == "Rebuild me"


def test_rebuilding_needs_a_token_the_admin_role_and_a_known_projection(client, system):
    assert_error(client.post(PATH.format("tasks")), 401, "UNAUTHORIZED")
    assert_error(signed_in(client).post(PATH.format("tasks")), 403, "FORBIDDEN")
    admin = make_admin(system, client)
    assert_error(admin.post(PATH.format("nope")), 404, "NOT_FOUND")


def test_a_second_rebuild_of_a_projection_while_one_runs_is_a_conflict(client, system):
    admin = make_admin(system, client)
    # A rebuild running in another process holds this lock.
    with system.store.exclusive("rebuild-tasks") as mine:
        assert mine
        assert_error(admin.post(PATH.format("tasks")), 409, "CONFLICT")
        # Other projections are not held up.
        assert admin.post(PATH.format("users")).status_code == 202
    assert wait_until_finished(system, "users")["state"] == "done"
    assert admin.post(PATH.format("tasks")).status_code == 202
    assert wait_until_finished(system, "tasks")["state"] == "done"



def test_the_status_route_shows_a_rebuild_in_progress_and_how_the_last_one_ended(client, system):
    admin = make_admin(system, client)

    def tasks_status() -> dict:
        response = admin.get("/api/v1/admin/projections/tasks")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    # A rebuild in another process records itself in the shared projection_rebuilds table.
    generation = system.rebuilds.log.begin("tasks", system.app.head_position())
    running = tasks_status()
    assert running["state"] == "rebuilding"
    assert running["rebuild"]["generation"] == generation and running["rebuild"]["state"] == "running"
    system.rebuilds.log.finish("tasks", generation, error="stopped by the test")
    failed = tasks_status()
    assert failed["state"] != "rebuilding"
    assert (failed["rebuild"]["state"], failed["rebuild"]["error"]) == ("failed", "stopped by the test")

    assert admin.post(PATH.format("tasks")).status_code == 202
    assert wait_until_finished(system, "tasks")["state"] == "done"
    done = tasks_status()["rebuild"]
    assert done["generation"] == generation + 1 and done["state"] == "done" and done["finishedAt"]
