"""Time travel: a task, a project and a project's board as they stood at an instant or a version,
rebuilt from the event store, in the same shape (and list rules) as today's reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.e2e.helpers import (
    Actor,
    add_member,
    assert_error,
    create_project,
    create_task,
    field_names,
    signed_in,
    with_role,
)
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)


def _shift(instant: str, microseconds: int) -> str:
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00")) + timedelta(microseconds=microseconds)
    return moment.isoformat().replace("+00:00", "Z")


def _history(actor: Actor, path: str, position: int) -> list[dict[str, Any]]:
    response = actor.read(f"{path}/history", position)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _live(actor: Actor, path: str, position: int) -> dict[str, Any]:
    response = actor.read(path, position)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _write(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _task_lifecycle(client: Any) -> dict[str, Any]:
    """create, update title, move, assign, delete; today's read of the task after each write."""
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "member")
    created = create_task(ada, project["id"], title="Draft", priority="high", labels=["api"])
    task_id = created["data"]["id"]
    path = f"/api/v1/tasks/{task_id}"
    seen = [_live(ada, path, created["meta"]["position"])]
    for change in ({"title": "Final"}, {"status": "in_progress"}, {"assigneeIds": [bob.id]}):
        written = _write(ada.patch(path, json=change))
        seen.append(_live(ada, path, written["meta"]["position"]))
    deleted = _write(ada.delete(path))
    events = _history(ada, path, deleted["meta"]["position"])
    return {"ada": ada, "bob": bob, "project": project, "task_id": task_id, "path": path, "seen": seen,
            "events": events}


def test_a_task_at_each_version_and_instant_is_what_the_live_read_said_then(client):
    life = _task_lifecycle(client)
    ada, path, seen, events = life["ada"], life["path"], life["seen"], life["events"]
    assert [e["type"] for e in events] == ["Task.Created", "Task.Updated", "Task.Moved", "Task.Assigned",
                                           "Task.Deleted"]
    for version, expected in enumerate(seen, start=1):
        by_version = ada.get(path, params={"version": version})
        assert by_version.status_code == 200, by_version.text
        body = by_version.json()
        # Exactly today's read of the task as it was then: same fields, same values.
        assert body["data"] == expected
        assert body["meta"] == {"historical": True, "asOf": None, "version": version,
                                "position": events[version - 1]["position"]}
        assert "ETag" not in by_version.headers
        assert by_version.headers["X-Projection-Position"]
        occurred = events[version - 1]["occurredAt"]
        at_event = ada.get(path, params={"asOf": occurred})
        assert at_event.status_code == 200, at_event.text
        assert at_event.json()["data"] == expected
        assert at_event.json()["meta"]["asOf"] == occurred
        assert at_event.json()["meta"]["position"] == events[version - 1]["position"]
        if version < len(seen):
            just_before_next = ada.get(path, params={"asOf": _shift(events[version]["occurredAt"], -1)})
            assert just_before_next.json()["data"] == expected
    # The values themselves, point by point.
    assert [(s["title"], s["status"], s["assigneeIds"], s["version"]) for s in seen] == [
        ("Draft", "todo", [], 1),
        ("Final", "todo", [], 2),
        ("Final", "in_progress", [], 3),
        ("Final", "in_progress", [life["bob"].id], 4),
    ]
    assert seen[0]["priority"] == "high" and seen[0]["labels"] == ["api"]
    # After the deletion, and before the task existed: not found, as today's read says of a deleted task.
    assert_error(ada.get(path, params={"version": 5}), 404, "NOT_FOUND")
    assert_error(ada.get(path, params={"asOf": events[4]["occurredAt"]}), 404, "NOT_FOUND")
    assert_error(ada.get(path), 404, "NOT_FOUND")
    assert_error(ada.get(path, params={"asOf": _shift(events[0]["occurredAt"], -1)}), 404, "NOT_FOUND")
    assert_error(ada.get(path, params={"version": 6}), 404, "NOT_FOUND")
    assert_error(ada.get(path, params={"version": "99999999999999999999999999"}), 404, "NOT_FOUND")


def test_bad_time_travel_parameters_are_validation_errors(client):
    ada = signed_in(client)
    project = create_project(ada)
    pid = project["data"]["id"]
    task = create_task(ada, pid)["data"]
    for path in (f"/api/v1/tasks/{task['id']}", f"/api/v1/projects/{pid}"):
        both = assert_error(ada.get(path, params={"asOf": "2026-01-01T00:00:00Z", "version": 1}),
                            400, "VALIDATION_FAILED")
        assert sorted(field_names(both)) == ["asOf", "version"]
        for bad_time in ("yesterday", "2026-13-01T00:00:00Z", "", "2026-01-01T25:00:00Z"):
            error = assert_error(ada.get(path, params={"asOf": bad_time}), 400, "VALIDATION_FAILED")
            assert field_names(error) == ["asOf"]
        for bad_version in ("0", "-1", "1.5", "two", ""):
            error = assert_error(ada.get(path, params={"version": bad_version}), 400, "VALIDATION_FAILED")
            assert field_names(error) == ["version"]
    board = f"/api/v1/projects/{pid}/tasks"
    assert field_names(assert_error(ada.get(board, params={"asOf": "soon"}), 400, "VALIDATION_FAILED")) == ["asOf"]
    # A board is many aggregates: it has no version.
    written = project["meta"]["position"]
    assert field_names(assert_error(ada.read(board, written, params={"version": 1}), 400,
                                    "VALIDATION_FAILED")) == ["version"]


def test_a_project_at_a_version_shows_its_name_and_members_then(client):
    ada = signed_in(client)
    bob = signed_in(client)
    created = create_project(ada, name="Apollo")
    pid = created["data"]["id"]
    path = f"/api/v1/projects/{pid}"
    seen = [_live(ada, path, created["meta"]["position"])]
    seen.append(_live(ada, path, add_member(ada, pid, bob, "viewer")["meta"]["position"]))
    seen.append(_live(ada, path, _write(ada.patch(path, json={"name": "Artemis"}))["meta"]["position"]))
    removed = _write(ada.delete(f"{path}/members/{bob.id}"))
    seen.append(_live(ada, path, removed["meta"]["position"]))
    events = _history(ada, path, removed["meta"]["position"])
    for version, expected in enumerate(seen, start=1):
        response = ada.get(path, params={"version": version})
        assert response.status_code == 200, response.text
        assert response.json()["data"] == expected
        assert response.json()["meta"]["position"] == events[version - 1]["position"]
        assert ada.get(path, params={"asOf": events[version - 1]["occurredAt"]}).json()["data"] == expected
    assert [(s["name"], sorted(m["userId"] for m in s["members"])) for s in seen] == [
        ("Apollo", [ada.id]),
        ("Apollo", sorted([ada.id, bob.id])),
        ("Artemis", sorted([ada.id, bob.id])),
        ("Artemis", [ada.id]),
    ]
    assert_error(ada.get(path, params={"version": 5}), 404, "NOT_FOUND")
    assert_error(ada.get(path, params={"asOf": _shift(events[0]["occurredAt"], -1)}), 404, "NOT_FOUND")


def test_non_members_get_404_and_auditors_may_read_any_past(client, system):
    life = _task_lifecycle(client)
    stranger = signed_in(client)
    auditor = with_role(system, client, "auditor", signed_in(client))
    pid, at = life["project"]["id"], life["events"][0]["occurredAt"]
    paths = (life["path"], f"/api/v1/projects/{pid}", f"/api/v1/projects/{pid}/tasks")
    for path in paths:
        assert_error(stranger.get(path, params={"asOf": at}), 404, "NOT_FOUND")
        response = auditor.read(path, auditor.position, params={"asOf": at})
        assert response.status_code == 200, response.text
    # The former member bob is still a member; a removed member loses the past too.
    ada, bob = life["ada"], life["bob"]
    assert bob.get(life["path"], params={"version": 1}).status_code == 200
    _write(ada.delete(f"/api/v1/projects/{pid}/members/{bob.id}"))
    removed = ada.get(f"/api/v1/projects/{pid}/history").json()["data"][-1]["position"]
    assert_error(bob.read(life["path"], removed, params={"version": 1}), 404, "NOT_FOUND")
    # Unknown ids are 404 too.
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(ada.get(f"/api/v1/tasks/{missing}", params={"version": 1}), 404, "NOT_FOUND")
    assert_error(ada.get(f"/api/v1/projects/{missing}/tasks", params={"asOf": at}), 404, "NOT_FOUND")
    # A task id is not a project id.
    assert_error(ada.get(f"/api/v1/projects/{life['task_id']}", params={"version": 1}), 404, "NOT_FOUND")


def _board(actor: Actor, pid: str, at: str, position: int, **params: Any) -> dict[str, Any]:
    response = actor.read(f"/api/v1/projects/{pid}/tasks", position, params={"asOf": at, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_board_as_it_stood_shows_the_tasks_of_that_moment(client):
    ada = signed_in(client)
    pid = create_project(ada)["data"]["id"]
    alpha = create_task(ada, pid, title="Alpha", priority="low")
    bravo = create_task(ada, pid, title="Bravo", priority="urgent")
    doomed = create_task(ada, pid, title="Charlie", priority="medium")
    moved = _write(ada.patch(f"/api/v1/tasks/{bravo['data']['id']}", json={"status": "done"}))
    _write(ada.delete(f"/api/v1/tasks/{doomed['data']['id']}"))
    late = create_task(ada, pid, title="Delta", priority="high")
    head = late["meta"]["position"]

    def events_of(task: dict[str, Any]) -> list[dict[str, Any]]:
        return _history(ada, f"/api/v1/tasks/{task['data']['id']}", head)

    created_doomed = events_of(doomed)[0]["occurredAt"]
    moved_at = events_of(bravo)[1]["occurredAt"]
    deleted_at = events_of(doomed)[1]["occurredAt"]
    late_at = events_of(late)[0]["occurredAt"]

    def statuses(board: dict[str, Any]) -> dict[str, str]:
        return {t["title"]: t["status"] for t in board["data"]}

    before_move = _board(ada, pid, created_doomed, head)
    assert statuses(before_move) == {"Alpha": "todo", "Bravo": "todo", "Charlie": "todo"}
    assert before_move["meta"]["total"] == 3
    assert before_move["meta"]["historical"] is True and before_move["meta"]["asOf"] == created_doomed
    assert before_move["meta"]["position"] == doomed["meta"]["position"]
    after_move = _board(ada, pid, moved_at, head)
    assert statuses(after_move) == {"Alpha": "todo", "Bravo": "done", "Charlie": "todo"}
    assert after_move["meta"]["position"] == moved["meta"]["position"]
    bravo_before, bravo_after = ([t for t in board["data"] if t["title"] == "Bravo"][0]
                                 for board in (before_move, after_move))
    assert bravo_before["completedAt"] is None and bravo_after["completedAt"] <= moved_at
    after_delete = _board(ada, pid, deleted_at, head)
    assert statuses(after_delete) == {"Alpha": "todo", "Bravo": "done"}
    assert statuses(_board(ada, pid, _shift(late_at, -1), head)) == {"Alpha": "todo", "Bravo": "done"}
    now = _board(ada, pid, late_at, head)
    assert statuses(now) == {"Alpha": "todo", "Bravo": "done", "Delta": "todo"}
    # The board as of now is today's list, field for field.
    live = ada.read(f"/api/v1/projects/{pid}/tasks", head).json()
    assert now["data"] == live["data"]
    before_project = _shift(_history(ada, f"/api/v1/projects/{pid}", head)[0]["occurredAt"], -1)
    assert_error(ada.get(f"/api/v1/projects/{pid}/tasks", params={"asOf": before_project}), 404, "NOT_FOUND")
    assert alpha["data"]["id"] in {t["id"] for t in before_move["data"]}


def test_list_rules_apply_to_the_board_as_it_stood(client):
    ada = signed_in(client)
    pid = create_project(ada)["data"]["id"]
    tasks = [create_task(ada, pid, title=f"Task {n}", priority=p)
             for n, p in enumerate(["low", "urgent", "medium", "high", "low"])]
    moves = [_write(ada.patch(f"/api/v1/tasks/{task['data']['id']}", json={"status": "in_progress"}))
             for task in tasks[:2]]
    # History is authorised from the projects read model: wait for it to hold the membership.
    then = _history(ada, f"/api/v1/tasks/{tasks[1]['data']['id']}", moves[-1]["meta"]["position"])[-1]["occurredAt"]
    head = _write(ada.patch(f"/api/v1/tasks/{tasks[2]['data']['id']}", json={"status": "in_progress"}))
    head_position = head["meta"]["position"]

    in_progress = _board(ada, pid, then, head_position, **{"filter[status]": "in_progress"})
    assert [t["title"] for t in in_progress["data"]] == ["Task 0", "Task 1"]
    by_priority = _board(ada, pid, then, head_position, sort="priority:desc,title:asc")
    assert [t["title"] for t in by_priority["data"]] == ["Task 1", "Task 3", "Task 2", "Task 0", "Task 4"]
    page = _board(ada, pid, then, head_position, sort="title:desc", page=2, perPage=2)
    assert [t["title"] for t in page["data"]] == ["Task 2", "Task 1"]
    assert page["meta"]["total"] == 5 and page["meta"]["totalPages"] == 3
    assert "asOf=" in page["links"]["next"]
    following = ada.read(page["links"]["next"], head_position)
    assert [t["title"] for t in following.json()["data"]] == ["Task 0"]
    # Cursor mode walks the same board.
    titles, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        chunk = _board(ada, pid, then, head_position, **params)
        titles += [t["title"] for t in chunk["data"]]
        cursor = chunk["meta"]["nextCursor"]
        if cursor is None:
            break
    assert titles == [f"Task {n}" for n in range(5)]
    error = assert_error(ada.get(f"/api/v1/projects/{pid}/tasks", params={"asOf": then, "filter[nope]": "x"}),
                         400, "VALIDATION_FAILED")
    assert field_names(error) == ["filter[nope]"]


def test_the_board_includes_tasks_the_tasks_read_model_has_not_applied_yet(settings):  # noqa: F811
    """The board's task set comes from the tasks read model plus the event store's tail after its
    position: here the tasks projection has made its tables but applies nothing (as if far
    behind), so every task comes from the tail."""
    from fastapi.testclient import TestClient

    from infra.composition import build_http_app, build_system
    from projections.tasks import TasksProjection

    system = build_system(settings, projection_names=["users", "projects"])
    system.store.ensure_tables(TasksProjection.name, TasksProjection.version, TasksProjection.tables)
    try:
        with TestClient(build_http_app(system), raise_server_exceptions=False) as client:
            ada = signed_in(client)
            project = create_project(ada)
            pid = project["data"]["id"]
            created = [create_task(ada, pid, title=t) for t in ("One", "Two")]
            assert system.store.position("tasks") == 0
            at = _history(ada, f"/api/v1/projects/{pid}", project["meta"]["position"])[0]["occurredAt"]
            now = _shift(at, 60_000_000)
            board = ada.get(f"/api/v1/projects/{pid}/tasks", params={"asOf": now})
            assert board.status_code == 200, board.text
            assert sorted(t["title"] for t in board.json()["data"]) == ["One", "Two"]
            assert board.json()["meta"]["position"] == created[-1]["meta"]["position"]
    finally:
        system.close()


def test_a_deleted_projects_past_is_for_auditors_and_ends_at_its_deletion(client, system):
    ada = signed_in(client)
    pid = create_project(ada, name="Gone")["data"]["id"]
    task = create_task(ada, pid, title="Left behind")
    deleted = _write(ada.delete(f"/api/v1/projects/{pid}"))
    auditor = with_role(system, client, "auditor", signed_in(client))
    head = max(deleted["meta"]["position"], auditor.position)
    events = _history(auditor, f"/api/v1/projects/{pid}", head)
    before, after = _shift(events[-1]["occurredAt"], -1), events[-1]["occurredAt"]
    paths = (f"/api/v1/projects/{pid}", f"/api/v1/projects/{pid}/tasks", f"/api/v1/tasks/{task['data']['id']}")
    for path in paths:
        # Its own owner, by today's rules, no longer sees it (as its history route says).
        assert_error(ada.read(path, head, params={"asOf": before}), 404, "NOT_FOUND")
        assert auditor.read(path, head, params={"asOf": before}).status_code == 200
    board = auditor.get(f"/api/v1/projects/{pid}/tasks", params={"asOf": before}).json()
    assert [t["title"] for t in board["data"]] == ["Left behind"]
    assert auditor.get(f"/api/v1/projects/{pid}", params={"asOf": before}).json()["data"]["name"] == "Gone"
    for path in paths[:2]:
        assert_error(auditor.get(path, params={"asOf": after}), 404, "NOT_FOUND")
    assert_error(auditor.get(paths[0], params={"version": len(events)}), 404, "NOT_FOUND")
