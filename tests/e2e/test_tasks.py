"""Tasks: create, change, move through the workflow, assign, delete; versions and read-your-writes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.helpers import (
    add_member,
    assert_error,
    create_project,
    create_task,
    field_names,
    is_iso_utc,
    raw,
    signed_in,
)
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def team(client):
    """An owner, a member and a viewer of one project."""
    owner = signed_in(client, name="Owner")
    member = signed_in(client, name="Member")
    viewer = signed_in(client, name="Viewer")
    project = create_project(owner)["data"]
    add_member(owner, project["id"], member, "member")
    add_member(owner, project["id"], viewer, "viewer")
    return owner, member, viewer, project


# --- creating ------------------------------------------------------------------------------------


def test_a_task_is_created_with_every_field(client, team):
    owner, member, _, project = team
    parent = create_task(owner, project["id"], title="Parent")["data"]
    body = {
        "title": "  Build the launch pad  ",
        "description": "Concrete, lots of it",
        "priority": "urgent",
        "status": "in_progress",
        "assigneeIds": [member.id, owner.id],
        "dueDate": "2030-05-20",
        "startDate": "2030-05-01",
        "estimate": 12.5,
        "labels": ["infra", "backend"],
        "parentId": parent["id"],
    }
    response = owner.post(f"/api/v1/projects/{project['id']}/tasks", json=body)
    assert response.status_code == 201, response.text
    task = response.json()["data"]
    assert task["title"] == "Build the launch pad"
    assert task["description"] == "Concrete, lots of it"
    assert task["priority"] == "urgent"
    assert task["status"] == "in_progress"
    assert task["assigneeIds"] == [member.id, owner.id]
    assert task["dueDate"] == "2030-05-20"
    assert task["startDate"] == "2030-05-01"
    assert task["estimate"] == 12.5
    assert sorted(task["labels"]) == ["backend", "infra"]
    assert task["parentId"] == parent["id"]
    assert task["projectId"] == project["id"]
    assert task["createdBy"] == owner.id
    assert task["completedAt"] is None
    assert task["version"] == 1
    assert is_iso_utc(task["createdAt"]) and is_iso_utc(task["updatedAt"])
    assert response.headers["Location"] == f"/api/v1/tasks/{task['id']}"
    assert response.headers["ETag"] == '"1"'


def test_a_task_gets_defaults_for_what_is_left_out(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"], title="Minimal")["data"]
    assert task["status"] == "todo"
    assert task["priority"] == "medium"
    assert task["description"] == ""
    assert task["assigneeIds"] == [] and task["labels"] == []
    assert task["dueDate"] is None and task["startDate"] is None and task["estimate"] is None
    assert task["parentId"] is None


def test_a_task_created_as_done_is_already_completed(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"], status="done")["data"]
    assert is_iso_utc(task["completedAt"])


def test_the_created_task_reads_back_exactly_as_written(client, team):
    owner, member, _, project = team
    created = create_task(owner, project["id"], priority="high", status="done", assigneeIds=[member.id],
                          dueDate="2031-01-02", startDate="2031-01-01", estimate=3, labels=["b", "a"])
    read = member.read(f"/api/v1/tasks/{created['data']['id']}", created["meta"]["position"])
    assert read.status_code == 200
    assert read.json()["data"] == created["data"]
    assert read.headers["ETag"] == f'"{created["meta"]["version"]}"'


def test_a_status_outside_the_workflow_is_a_validation_error_on_status(client, team):
    owner, _, _, project = team
    response = owner.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "X", "status": "someday"})
    error = assert_error(response, 400, "VALIDATION_FAILED")
    assert field_names(error) == ["status"]


def test_a_due_date_before_the_start_date_is_a_validation_error(client, team):
    owner, _, _, project = team
    response = owner.post(f"/api/v1/projects/{project['id']}/tasks",
                          json={"title": "X", "startDate": "2030-02-02", "dueDate": "2030-02-01"})
    error = assert_error(response, 400, "VALIDATION_FAILED")
    assert field_names(error) == ["dueDate"]


def test_an_assignee_who_is_not_a_member_is_a_validation_error(client, team):
    owner, _, _, project = team
    stranger = signed_in(client)
    response = owner.post(f"/api/v1/projects/{project['id']}/tasks",
                          json={"title": "X", "assigneeIds": [stranger.id]})
    error = assert_error(response, 400, "VALIDATION_FAILED")
    assert field_names(error) == ["assigneeIds"]


def test_a_parent_from_another_project_is_a_validation_error(client, team):
    owner, _, _, project = team
    other = create_project(owner, name="Other")["data"]
    foreign = create_task(owner, other["id"])["data"]
    response = owner.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "X", "parentId": foreign["id"]})
    error = assert_error(response, 400, "VALIDATION_FAILED")
    assert field_names(error) == ["parentId"]
    response = owner.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "X", "parentId": MISSING})
    assert field_names(assert_error(response, 400, "VALIDATION_FAILED")) == ["parentId"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "X", "priority": "whenever"}, "priority"),
        ({"title": "X", "estimate": -1}, "estimate"),
        ({"title": "X", "dueDate": "2030-13-45"}, "dueDate"),
        ({"title": "X", "assigneeIds": ["not-a-uuid"]}, "assigneeIds.0"),
        ({"title": "X", "labels": [""]}, "labels.0"),
        ({"title": "X", "labels": ["l"] * 21}, "labels"),
        ({"title": "X", "colour": "red"}, "colour"),
        ({"description": "no title"}, "title"),
    ],
)
def test_invalid_task_fields_are_named_in_the_error(client, team, body, field):
    owner, _, _, project = team
    error = assert_error(owner.post(f"/api/v1/projects/{project['id']}/tasks", json=body), 400, "VALIDATION_FAILED")
    assert field_names(error) == [field]


def test_a_viewer_cannot_create_tasks(client, team):
    _, _, viewer, project = team
    assert_error(viewer.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "X"}), 403, "FORBIDDEN")


def test_a_member_can_create_tasks(client, team):
    _, member, _, project = team
    assert create_task(member, project["id"])["data"]["createdBy"] == member.id


def test_creating_a_task_with_an_idempotency_key_creates_one_task(client, team):
    owner, _, _, project = team
    headers = {"Idempotency-Key": "task-1"}
    first = owner.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "Once"}, headers=headers)
    again = owner.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "Once"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    listed = owner.read(f"/api/v1/projects/{project['id']}/tasks", again.json()["meta"]["position"])
    assert listed.json()["meta"]["total"] == 1
    different = owner.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "Twice"}, headers=headers)
    assert_error(different, 409, "CONFLICT")


# --- changing ------------------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"], description="keep me", labels=["x"])["data"]
    response = owner.patch(f"/api/v1/tasks/{task['id']}",
                           json={"title": "New title", "priority": "low", "estimate": 2, "dueDate": "2030-01-01"})
    assert response.status_code == 200, response.text
    changed = response.json()["data"]
    assert changed["title"] == "New title"
    assert changed["priority"] == "low"
    assert changed["estimate"] == 2
    assert changed["dueDate"] == "2030-01-01"
    assert changed["description"] == "keep me"
    assert changed["labels"] == ["x"]
    assert changed["version"] == 2
    assert response.headers["ETag"] == '"2"'
    read = owner.read(f"/api/v1/tasks/{task['id']}", response.json()["meta"]["position"])
    assert read.json()["data"] == changed


def test_patch_with_null_clears_an_optional_field(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"], dueDate="2030-01-01", estimate=4)["data"]
    response = owner.patch(f"/api/v1/tasks/{task['id']}", json={"dueDate": None, "estimate": None})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["dueDate"] is None
    assert response.json()["data"]["estimate"] is None


@pytest.mark.parametrize("field", ["title", "priority", "status", "labels", "assigneeIds", "description"])
def test_patch_with_null_for_a_required_field_is_a_validation_error(client, team, field):
    owner, _, _, project = team
    task = create_task(owner, project["id"])["data"]
    error = assert_error(owner.patch(f"/api/v1/tasks/{task['id']}", json={field: None}), 400, "VALIDATION_FAILED")
    assert field_names(error) == [field]


def test_patch_that_puts_the_due_date_before_the_start_date_is_refused(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"], startDate="2030-03-10")["data"]
    error = assert_error(owner.patch(f"/api/v1/tasks/{task['id']}", json={"dueDate": "2030-03-01"}), 400,
                         "VALIDATION_FAILED")
    assert field_names(error) == ["dueDate"]


def test_patch_with_nothing_changed_writes_no_new_version(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"], title="Same")["data"]
    response = owner.patch(f"/api/v1/tasks/{task['id']}", json={"title": "Same"})
    assert response.status_code == 200
    assert response.json()["data"]["version"] == 1


def test_moving_to_done_sets_completed_at_and_moving_back_clears_it(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"])["data"]
    done = owner.patch(f"/api/v1/tasks/{task['id']}", json={"status": "done"})
    assert done.status_code == 200, done.text
    assert done.json()["data"]["status"] == "done"
    assert is_iso_utc(done.json()["data"]["completedAt"])
    read = owner.read(f"/api/v1/tasks/{task['id']}", done.json()["meta"]["position"])
    assert read.json()["data"]["completedAt"] == done.json()["data"]["completedAt"]

    reopened = owner.patch(f"/api/v1/tasks/{task['id']}", json={"status": "in_review"})
    assert reopened.status_code == 200
    assert reopened.json()["data"]["status"] == "in_review"
    assert reopened.json()["data"]["completedAt"] is None
    read = owner.read(f"/api/v1/tasks/{task['id']}", reopened.json()["meta"]["position"])
    assert read.json()["data"] == reopened.json()["data"]


def test_moving_to_a_status_outside_the_workflow_is_a_validation_error(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"])["data"]
    error = assert_error(owner.patch(f"/api/v1/tasks/{task['id']}", json={"status": "archived"}), 400,
                         "VALIDATION_FAILED")
    assert field_names(error) == ["status"]


def test_assignees_are_replaced_by_patch(client, team):
    owner, member, viewer, project = team
    task = create_task(owner, project["id"], assigneeIds=[owner.id, member.id])["data"]
    response = owner.patch(f"/api/v1/tasks/{task['id']}", json={"assigneeIds": [member.id, viewer.id]})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["assigneeIds"] == [member.id, viewer.id]
    read = owner.read(f"/api/v1/tasks/{task['id']}", response.json()["meta"]["position"])
    assert read.json()["data"] == response.json()["data"]
    cleared = owner.patch(f"/api/v1/tasks/{task['id']}", json={"assigneeIds": []})
    assert cleared.json()["data"]["assigneeIds"] == []


def test_assigning_a_non_member_by_patch_is_refused_and_changes_nothing(client, team):
    owner, member, _, project = team
    stranger = signed_in(client)
    created = create_task(owner, project["id"], assigneeIds=[member.id])
    task = created["data"]
    error = assert_error(owner.patch(f"/api/v1/tasks/{task['id']}", json={"assigneeIds": [stranger.id]}), 400,
                         "VALIDATION_FAILED")
    assert field_names(error) == ["assigneeIds"]
    read = owner.read(f"/api/v1/tasks/{task['id']}", created["meta"]["position"])
    assert read.json()["data"]["assigneeIds"] == [member.id]
    assert read.json()["data"]["version"] == 1


def test_a_status_move_and_field_changes_in_one_patch_agree_with_the_read_model(client, team):
    owner, member, _, project = team
    task = create_task(owner, project["id"])["data"]
    response = owner.patch(f"/api/v1/tasks/{task['id']}",
                           json={"title": "All at once", "status": "done", "assigneeIds": [member.id],
                                 "labels": ["z", "a"]})
    assert response.status_code == 200, response.text
    read = owner.read(f"/api/v1/tasks/{task['id']}", response.json()["meta"]["position"])
    assert read.json()["data"] == response.json()["data"]


def test_a_viewer_cannot_change_a_task(client, team):
    owner, _, viewer, project = team
    task = create_task(owner, project["id"])["data"]
    assert_error(viewer.patch(f"/api/v1/tasks/{task['id']}", json={"title": "X"}), 403, "FORBIDDEN")


def test_an_unknown_task_is_not_found(client, team):
    owner, _, _, _ = team
    assert_error(owner.get(f"/api/v1/tasks/{MISSING}"), 404, "NOT_FOUND")
    assert_error(owner.patch(f"/api/v1/tasks/{MISSING}", json={"title": "X"}), 404, "NOT_FOUND")
    assert_error(owner.delete(f"/api/v1/tasks/{MISSING}"), 404, "NOT_FOUND")


# --- versions ------------------------------------------------------------------------------------


def test_if_match_with_the_wrong_version_is_a_precondition_failure(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"])["data"]
    second = owner.patch(f"/api/v1/tasks/{task['id']}", json={"title": "v2"})
    stale = owner.patch(f"/api/v1/tasks/{task['id']}", json={"title": "v3"}, headers={"If-Match": '"1"'})
    assert_error(stale, 412, "PRECONDITION_FAILED")
    current = owner.read(f"/api/v1/tasks/{task['id']}", second.json()["meta"]["position"]).json()["data"]
    assert current["title"] == "v2" and current["version"] == 2
    fresh = owner.patch(f"/api/v1/tasks/{task['id']}", json={"title": "v3"}, headers={"If-Match": '"2"'})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == '"3"'


def test_if_match_accepts_the_etag_the_read_api_returned(client, team):
    owner, _, _, project = team
    created = create_task(owner, project["id"])
    read = owner.read(f"/api/v1/tasks/{created['data']['id']}", created["meta"]["position"])
    response = owner.patch(f"/api/v1/tasks/{created['data']['id']}", json={"title": "Conditional"},
                           headers={"If-Match": read.headers["ETag"]})
    assert response.status_code == 200
    weak = owner.patch(f"/api/v1/tasks/{created['data']['id']}", json={"title": "Weak"},
                       headers={"If-Match": f'W/"{response.json()["meta"]["version"]}"'})
    assert weak.status_code == 200


def test_delete_with_a_stale_if_match_is_refused(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"])["data"]
    owner.patch(f"/api/v1/tasks/{task['id']}", json={"title": "v2"})
    assert_error(owner.delete(f"/api/v1/tasks/{task['id']}", headers={"If-Match": '"1"'}), 412,
                 "PRECONDITION_FAILED")
    assert owner.delete(f"/api/v1/tasks/{task['id']}", headers={"If-Match": '"2"'}).status_code == 200


def test_the_etag_of_a_read_task_is_its_version_and_if_none_match_gives_304(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"])["data"]
    changed = owner.patch(f"/api/v1/tasks/{task['id']}", json={"priority": "high"})
    read = owner.read(f"/api/v1/tasks/{task['id']}", changed.json()["meta"]["position"])
    assert read.headers["ETag"] == f'"{changed.json()["meta"]["version"]}"' == '"2"'
    cached = owner.get(f"/api/v1/tasks/{task['id']}", headers={"If-None-Match": read.headers["ETag"]})
    assert cached.status_code == 304


# --- deleting ------------------------------------------------------------------------------------


def test_a_deleted_task_is_gone_from_reads_but_its_history_stays(client, team):
    owner, member, _, project = team
    task = create_task(owner, project["id"])["data"]
    deleted = member.delete(f"/api/v1/tasks/{task['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["meta"]["version"] == 2
    position = deleted.json()["meta"]["position"]
    assert_error(owner.read(f"/api/v1/tasks/{task['id']}", position), 404, "NOT_FOUND")
    assert owner.read(f"/api/v1/projects/{project['id']}/tasks", position).json()["data"] == []
    history = member.read(f"/api/v1/tasks/{task['id']}/history", position)
    assert history.status_code == 200
    assert [e["type"] for e in history.json()["data"]] == ["Task.Created", "Task.Deleted"]
    # A deleted task cannot be changed, deleted again or commented on.
    assert_error(owner.patch(f"/api/v1/tasks/{task['id']}", json={"title": "X"}), 404, "NOT_FOUND")
    assert_error(owner.delete(f"/api/v1/tasks/{task['id']}"), 404, "NOT_FOUND")
    assert_error(owner.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": "X"}), 404, "NOT_FOUND")


def test_a_viewer_cannot_delete_a_task(client, team):
    owner, _, viewer, project = team
    task = create_task(owner, project["id"])["data"]
    assert_error(viewer.delete(f"/api/v1/tasks/{task['id']}"), 403, "FORBIDDEN")


def test_a_subtask_cannot_have_a_deleted_parent(client, team):
    owner, _, _, project = team
    parent = create_task(owner, project["id"])["data"]
    owner.delete(f"/api/v1/tasks/{parent['id']}")
    response = owner.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "Child", "parentId": parent["id"]})
    assert field_names(assert_error(response, 400, "VALIDATION_FAILED")) == ["parentId"]


# --- robustness ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_an_infinite_estimate_is_a_validation_error(client, team, method):
    owner, _, _, project = team
    task = create_task(owner, project["id"])["data"]
    path = f"/api/v1/projects/{project['id']}/tasks" if method == "POST" else f"/api/v1/tasks/{task['id']}"
    response = raw(client, method, path, b'{"title": "x", "estimate": 1e400}', {"Content-Type": "application/json"},
                   owner)
    assert field_names(assert_error(response, 400, "VALIDATION_FAILED")) == ["estimate"]


def test_concurrent_edits_without_if_match_lose_nothing_and_never_fail_with_500(client, team):
    owner, _, _, project = team
    task = create_task(owner, project["id"])["data"]

    def edit(i: int):
        return owner.patch(f"/api/v1/tasks/{task['id']}", json={"labels": [f"label-{i}"]})

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(edit, range(12)))
    assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses]
    applied = [r.json()["meta"] for r in responses if r.status_code == 200]
    assert applied, "at least one concurrent edit goes through"
    # Every accepted edit is its own version of the task; none was lost.
    assert sorted(m["version"] for m in applied) == list(range(2, 2 + len(applied)))
    last = max(applied, key=lambda m: m["position"])
    history = owner.read(f"/api/v1/tasks/{task['id']}/history", last["position"]).json()
    assert history["meta"]["total"] == 1 + len(applied)
    read = owner.read(f"/api/v1/tasks/{task['id']}", last["position"]).json()["data"]
    assert read["version"] == 1 + len(applied)
