"""History: every aggregate's events from the event store, in order, with who, why and when."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import (
    Actor,
    add_comment,
    add_member,
    assert_error,
    create_project,
    create_task,
    field_names,
    is_iso_utc,
    login,
    make_admin,
    signed_in,
    with_role,
)
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)

MISSING = "00000000-0000-4000-8000-000000000000"


def _rid(name: str) -> dict[str, str]:
    return {"X-Request-ID": name}


def _assert_well_formed(events: list[dict]) -> None:
    positions = [e["position"] for e in events]
    assert all(b > a for a, b in zip(positions, positions[1:])), positions
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    for e in events:
        assert {"position", "version", "type", "occurredAt", "actorId", "requestId", "data"} <= set(e)
        assert is_iso_utc(e["occurredAt"])
        assert isinstance(e["data"], dict)


def test_task_history_lists_its_events_in_order_with_their_request_ids(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "member")
    created = ada.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "Launch"},
                       headers=_rid("create-task-1"))
    assert created.status_code == 201
    assert created.headers["X-Request-ID"] == "create-task-1"
    task_id = created.json()["data"]["id"]
    moved = bob.patch(f"/api/v1/tasks/{task_id}", json={"status": "done"}, headers=_rid("move-task-1"))
    assert moved.headers["X-Request-ID"] == "move-task-1"
    edited = ada.patch(f"/api/v1/tasks/{task_id}", json={"title": "Launch v2", "assigneeIds": [bob.id]},
                       headers=_rid("edit-task-1"))

    response = bob.read(f"/api/v1/tasks/{task_id}/history", edited.json()["meta"]["position"])
    assert response.status_code == 200, response.text
    events = response.json()["data"]
    _assert_well_formed(events)
    assert [e["type"] for e in events] == ["Task.Created", "Task.Moved", "Task.Updated", "Task.Assigned"]
    assert [e["requestId"] for e in events] == ["create-task-1", "move-task-1", "edit-task-1", "edit-task-1"]
    assert [e["actorId"] for e in events] == [ada.id, bob.id, ada.id, ada.id]
    assert events[0]["position"] == created.json()["meta"]["position"]
    assert events[1]["position"] == moved.json()["meta"]["position"]
    assert events[0]["data"]["title"] == "Launch"
    assert events[1]["data"]["fromStatus"] == "todo" and events[1]["data"]["toStatus"] == "done"
    assert is_iso_utc(events[1]["data"]["completedAt"])
    assert events[2]["data"]["changes"] == {"title": "Launch v2"}
    assert events[3]["data"]["userId"] == bob.id
    assert response.json()["meta"]["total"] == 4


def test_a_server_generated_request_id_is_echoed_and_recorded(client):
    ada = signed_in(client)
    # Not a sane id (spaces, too long): the server makes its own.
    for unsafe in ("has spaces", "x" * 200):
        created = ada.post("/api/v1/projects", json={"name": "P"}, headers=_rid(unsafe))
        rid = created.headers["X-Request-ID"]
        assert rid != unsafe and rid
        history = ada.read(f"/api/v1/projects/{created.json()['data']['id']}/history",
                           created.json()["meta"]["position"])
        assert history.json()["data"][0]["requestId"] == rid


def test_every_response_carries_a_request_id(client):
    ada = signed_in(client)
    generated = ada.get("/api/v1/auth/profile")
    assert generated.headers["X-Request-ID"]
    echoed = ada.get("/api/v1/auth/profile", headers=_rid("mine-123"))
    assert echoed.headers["X-Request-ID"] == "mine-123"
    assert client.get("/health").headers["X-Request-ID"]


def test_a_correlation_id_is_recorded_with_the_events(client):
    ada = signed_in(client)
    created = ada.post("/api/v1/projects", json={"name": "P"},
                       headers={"X-Request-ID": "req-9", "X-Correlation-ID": "saga-42"})
    event = ada.read(f"/api/v1/projects/{created.json()['data']['id']}/history",
                     created.json()["meta"]["position"]).json()["data"][0]
    assert event["requestId"] == "req-9"
    assert event["correlationId"] == "saga-42"


def test_project_history_records_each_change(client):
    ada = signed_in(client)
    bob = signed_in(client)
    created = ada.post("/api/v1/projects", json={"name": "Apollo"}, headers=_rid("p-1"))
    pid = created.json()["data"]["id"]
    ada.post(f"/api/v1/projects/{pid}/members", json={"userId": bob.id, "role": "viewer"}, headers=_rid("p-2"))
    ada.patch(f"/api/v1/projects/{pid}/members/{bob.id}", json={"role": "member"}, headers=_rid("p-3"))
    ada.patch(f"/api/v1/projects/{pid}", json={"name": "Artemis"}, headers=_rid("p-4"))
    ada.post(f"/api/v1/projects/{pid}/archive", headers=_rid("p-5"))
    ada.post(f"/api/v1/projects/{pid}/restore", headers=_rid("p-6"))
    last = ada.delete(f"/api/v1/projects/{pid}/members/{bob.id}", headers=_rid("p-7"))

    events = ada.read(f"/api/v1/projects/{pid}/history", last.json()["meta"]["position"]).json()["data"]
    _assert_well_formed(events)
    assert [e["type"] for e in events] == [
        "Project.Created", "Project.MemberAdded", "Project.MemberRoleChanged", "Project.Updated",
        "Project.Archived", "Project.Restored", "Project.MemberRemoved",
    ]
    assert [e["requestId"] for e in events] == [f"p-{i}" for i in range(1, 8)]
    assert all(e["actorId"] == ada.id for e in events)
    assert events[0]["data"]["name"] == "Apollo"
    assert events[0]["data"]["ownerId"] == ada.id
    assert events[1]["data"] == {"userId": bob.id, "role": "viewer"}
    assert events[3]["data"]["changes"] == {"name": "Artemis"}


def test_comment_history_records_edits_and_deletion(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    task = create_task(ada, project["id"])["data"]
    comment = add_comment(ada, task["id"], "first", headers=_rid("c-1"))["data"]
    ada.patch(f"/api/v1/comments/{comment['id']}", json={"body": "second"}, headers=_rid("c-2"))
    last = ada.delete(f"/api/v1/comments/{comment['id']}", headers=_rid("c-3"))
    events = ada.read(f"/api/v1/comments/{comment['id']}/history", last.json()["meta"]["position"]).json()["data"]
    _assert_well_formed(events)
    assert [(e["type"], e["requestId"]) for e in events] == [
        ("Comment.Added", "c-1"), ("Comment.Edited", "c-2"), ("Comment.Deleted", "c-3"),
    ]
    assert events[0]["data"]["body"] == "first" and events[1]["data"]["body"] == "second"


def test_user_history_never_shows_the_password_hash(client):
    ada = signed_in(client)
    ada.put(f"/api/v1/users/{ada.id}", json={"name": "Ada B"}, headers=_rid("u-2"))
    ada.put(f"/api/v1/users/{ada.id}", json={"password": "another good one"}, headers=_rid("u-3"))
    again = Actor(client, ada.id, ada.email, login(client, ada.email, "another good one"))
    response = again.get(f"/api/v1/users/{ada.id}/history")
    assert response.status_code == 200, response.text
    events = response.json()["data"]
    _assert_well_formed(events)
    assert [e["type"] for e in events] == ["User.Registered", "User.ProfileUpdated", "User.PasswordChanged"]
    assert events[0]["actorId"] is None  # registration is anonymous
    assert [e["requestId"] for e in events[1:]] == ["u-2", "u-3"]
    assert "$argon2" not in response.text
    for event in events:
        assert event["data"].get("passwordHash", "[redacted]") == "[redacted]"
        assert "password" not in {k.lower() for k in event["data"]}


def test_a_user_history_is_readable_by_the_user_and_admins_only(client, system):
    ada = signed_in(client)
    bob = signed_in(client)
    admin = make_admin(system, client)
    assert_error(bob.get(f"/api/v1/users/{ada.id}/history"), 404, "NOT_FOUND")
    assert ada.get(f"/api/v1/users/{ada.id}/history").status_code == 200
    assert admin.get(f"/api/v1/users/{ada.id}/history").status_code == 200
    # The admin's own grant shows in their history, made by the system.
    grant = admin.get(f"/api/v1/users/{admin.id}/history").json()["data"][-1]
    assert grant["type"] == "User.RoleGranted"
    assert grant["data"]["role"] == "admin"
    assert grant["actorId"] is None and grant["requestId"] == "test"


def test_an_auditor_reads_the_history_of_any_project_even_after_deletion(client, system):
    ada = signed_in(client)
    auditor = signed_in(client)
    auditor = with_role(system, client, "auditor", auditor)
    project = create_project(ada)["data"]
    deleted = ada.delete(f"/api/v1/projects/{project['id']}")
    events = auditor.read(f"/api/v1/projects/{project['id']}/history", deleted.json()["meta"]["position"])
    events = events.json()["data"]
    assert [e["type"] for e in events] == ["Project.Created", "Project.Deleted"]


def test_history_of_a_deleted_task_stays_readable_by_members(client):
    ada = signed_in(client)
    viewer = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], viewer, "viewer")
    task = create_task(ada, project["id"])["data"]
    deleted = ada.delete(f"/api/v1/tasks/{task['id']}")
    events = viewer.read(f"/api/v1/tasks/{task['id']}/history", deleted.json()["meta"]["position"]).json()["data"]
    assert [e["type"] for e in events] == ["Task.Created", "Task.Deleted"]


def test_history_is_hidden_from_non_members(client):
    ada = signed_in(client)
    stranger = signed_in(client)
    project = create_project(ada)["data"]
    task = create_task(ada, project["id"])["data"]
    written = add_comment(ada, task["id"])
    comment, position = written["data"], written["meta"]["position"]
    for path in (f"projects/{project['id']}", f"tasks/{task['id']}", f"comments/{comment['id']}"):
        assert ada.read(f"/api/v1/{path}/history", position).status_code == 200
        assert_error(stranger.read(f"/api/v1/{path}/history", position), 404, "NOT_FOUND")


@pytest.mark.parametrize("kind", ["users", "projects", "tasks", "comments"])
def test_history_of_an_unknown_id_is_not_found(client, kind):
    ada = signed_in(client)
    assert_error(ada.get(f"/api/v1/{kind}/{MISSING}/history"), 404, "NOT_FOUND")


def test_history_under_the_wrong_resource_is_not_found(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    created = create_task(ada, project["id"])
    task = created["data"]
    assert ada.read(f"/api/v1/tasks/{task['id']}/history", created["meta"]["position"]).status_code == 200
    assert_error(ada.get(f"/api/v1/tasks/{project['id']}/history"), 404, "NOT_FOUND")
    assert_error(ada.get(f"/api/v1/projects/{task['id']}/history"), 404, "NOT_FOUND")
    assert_error(ada.get(f"/api/v1/users/{project['id']}/history"), 404, "NOT_FOUND")
    assert_error(ada.get(f"/api/v1/comments/{task['id']}/history"), 404, "NOT_FOUND")


def test_history_needs_a_token(client):
    ada = signed_in(client)
    assert_error(client.get(f"/api/v1/users/{ada.id}/history"), 401, "UNAUTHORIZED")


def test_history_is_paged(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    task = create_task(ada, project["id"])["data"]
    for title in ("a", "b", "c", "d"):
        position = ada.patch(f"/api/v1/tasks/{task['id']}", json={"title": title}).json()["meta"]["position"]
    full = ada.read(f"/api/v1/tasks/{task['id']}/history", position).json()["data"]
    page = ada.read(f"/api/v1/tasks/{task['id']}/history?perPage=2&page=2", position).json()
    assert page["data"] == full[2:4]
    assert page["meta"] == {"total": 5, "page": 2, "perPage": 2, "totalPages": 3}
    error = assert_error(ada.get(f"/api/v1/tasks/{task['id']}/history?perPage=501"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["perPage"]
    assert_error(ada.get(f"/api/v1/tasks/{task['id']}/history?page=0"), 400, "VALIDATION_FAILED")


def test_an_idempotent_replay_writes_no_event(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    headers = {"Idempotency-Key": "hist-1"}
    first = ada.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "Once"}, headers=headers)
    again = ada.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "Once"}, headers=headers)
    position = again.json()["meta"]["position"]
    events = ada.read(f"/api/v1/tasks/{first.json()['data']['id']}/history", position).json()["data"]
    assert [e["type"] for e in events] == ["Task.Created"]
    assert ada.read(f"/api/v1/projects/{project['id']}/history", position).json()["meta"]["total"] == 1


def test_positions_in_history_match_the_positions_writes_returned(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    task = create_task(ada, project["id"])
    writes = [task["meta"]["position"]]
    for status in ("in_progress", "in_review", "done"):
        writes.append(ada.patch(f"/api/v1/tasks/{task['data']['id']}", json={"status": status})
                      .json()["meta"]["position"])
    events = ada.read(f"/api/v1/tasks/{task['data']['id']}/history", writes[-1]).json()["data"]
    assert [e["position"] for e in events] == writes
    assert [e["version"] for e in events] == [1, 2, 3, 4]


def test_a_member_just_added_reads_the_history_with_the_position_of_the_addition(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    added = add_member(ada, project["id"], bob, "viewer")
    response = bob.read(f"/api/v1/projects/{project['id']}/history", added["meta"]["position"])
    assert response.status_code == 200, response.text
    assert int(response.headers["X-Projection-Position"]) >= added["meta"]["position"]
    assert [e["type"] for e in response.json()["data"]] == ["Project.Created", "Project.MemberAdded"]
