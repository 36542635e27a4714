"""Projects: create, edit, archive/restore, delete, workflow, members and who may see or do what."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import (
    add_comment,
    add_member,
    assert_error,
    create_project,
    create_task,
    field_names,
    make_admin,
    signed_in,
)
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)

DEFAULT_WORKFLOW = [
    {"name": "todo", "category": "todo"},
    {"name": "in_progress", "category": "in_progress"},
    {"name": "in_review", "category": "in_progress"},
    {"name": "done", "category": "done"},
    {"name": "cancelled", "category": "cancelled"},
]
MISSING = "00000000-0000-4000-8000-000000000000"


def _members(project):
    return {m["userId"]: m["role"] for m in project["members"]}


# --- creating and reading ------------------------------------------------------------------------


def test_creating_a_project_makes_the_creator_its_owner_with_the_default_workflow(client):
    ada = signed_in(client)
    response = ada.post("/api/v1/projects", json={"name": "Apollo", "description": "To the moon", "key": "APL"})
    assert response.status_code == 201, response.text
    project = response.json()["data"]
    assert project["name"] == "Apollo"
    assert project["description"] == "To the moon"
    assert project["key"] == "APL"
    assert project["ownerId"] == ada.id
    assert project["archived"] is False
    assert project["workflow"] == DEFAULT_WORKFLOW
    assert project["members"] == [{"userId": ada.id, "role": "owner"}]
    assert project["memberCount"] == 1
    assert response.headers["Location"] == f"/api/v1/projects/{project['id']}"
    assert response.headers["ETag"] == f'"{response.json()["meta"]["version"]}"'


def test_a_created_project_reads_back_exactly_as_written(client):
    ada = signed_in(client)
    created = create_project(ada, description="d", key="AB1")
    read = ada.read(f"/api/v1/projects/{created['data']['id']}", created["meta"]["position"])
    assert read.status_code == 200
    assert read.json()["data"] == created["data"]
    assert read.headers["ETag"] == f'"{created["meta"]["version"]}"'


def test_a_project_with_members_reads_back_exactly_as_written(client):
    ada = signed_in(client)
    bob = signed_in(client)
    cy = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "viewer")
    written = add_member(ada, project["id"], cy, "admin")
    read = ada.read(f"/api/v1/projects/{project['id']}", written["meta"]["position"])
    assert read.json()["data"] == written["data"]
    assert _members(read.json()["data"]) == {ada.id: "owner", bob.id: "viewer", cy.id: "admin"}
    assert read.json()["data"]["memberCount"] == 3


def test_creating_a_project_with_invalid_fields_names_each_field(client):
    ada = signed_in(client)
    error = assert_error(ada.post("/api/v1/projects", json={"name": "", "key": "lower"}), 400, "VALIDATION_FAILED")
    assert set(field_names(error)) == {"name", "key"}


def test_creating_a_project_needs_a_token(client):
    assert_error(client.post("/api/v1/projects", json={"name": "Apollo"}), 401, "UNAUTHORIZED")


def test_creating_a_project_with_an_idempotency_key_creates_it_once(client):
    ada = signed_in(client)
    headers = {"Idempotency-Key": "proj-1"}
    first = ada.post("/api/v1/projects", json={"name": "Once"}, headers=headers)
    again = ada.post("/api/v1/projects", json={"name": "Once"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    listed = ada.read("/api/v1/projects", again.json()["meta"]["position"])
    assert [p["id"] for p in listed.json()["data"]] == [first.json()["data"]["id"]]
    # The same key from another user is that user's own key.
    bob = signed_in(client)
    theirs = bob.post("/api/v1/projects", json={"name": "Once"}, headers=headers)
    assert theirs.status_code == 201
    assert theirs.json()["data"]["id"] != first.json()["data"]["id"]


def test_the_project_list_shows_only_projects_you_are_a_member_of(client):
    ada = signed_in(client)
    bob = signed_in(client)
    mine = create_project(ada, name="Mine")["data"]
    shared = create_project(bob, name="Shared")["data"]
    create_project(bob, name="Bob only")
    written = add_member(bob, shared["id"], ada, "viewer")
    listed = ada.read("/api/v1/projects", written["meta"]["position"])
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()["data"]] == [mine["id"], shared["id"]]  # sorted by name
    assert listed.json()["meta"]["total"] == 2


def test_an_admin_lists_every_project(client, system):
    admin = make_admin(system, client)
    ada = signed_in(client)
    create_project(ada, name="A")
    last = create_project(signed_in(client), name="B")
    listed = admin.read("/api/v1/projects", last["meta"]["position"])
    assert [p["name"] for p in listed.json()["data"]] == ["A", "B"]


def test_the_project_list_can_be_filtered_and_sorted(client):
    ada = signed_in(client)
    create_project(ada, name="Zeta", key="ZZ")
    alpha = create_project(ada, name="alpha", key="AA")["data"]
    archived = ada.post(f"/api/v1/projects/{alpha['id']}/archive")
    position = archived.json()["meta"]["position"]
    by_key = ada.read("/api/v1/projects?sort=key:desc", position)
    assert [p["key"] for p in by_key.json()["data"]] == ["ZZ", "AA"]
    only_archived = ada.read("/api/v1/projects?filter[archived]=true", position)
    assert [p["name"] for p in only_archived.json()["data"]] == ["alpha"]
    like = ada.read("/api/v1/projects?filter[name][like]=ZET", position)
    assert [p["name"] for p in like.json()["data"]] == ["Zeta"]


def test_a_projects_members_are_listed_with_their_roles(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    written = add_member(ada, project["id"], bob, "viewer")
    response = bob.read(f"/api/v1/projects/{project['id']}/members", written["meta"]["position"])
    assert response.status_code == 200
    rows = response.json()["data"]
    assert [(m["userId"], m["role"]) for m in rows] == [(ada.id, "owner"), (bob.id, "viewer")]
    assert response.json()["meta"]["total"] == 2
    viewers = bob.read(f"/api/v1/projects/{project['id']}/members?filter[role]=viewer", written["meta"]["position"])
    assert [m["userId"] for m in viewers.json()["data"]] == [bob.id]


def test_an_unknown_project_is_not_found(client):
    ada = signed_in(client)
    assert_error(ada.get(f"/api/v1/projects/{MISSING}"), 404, "NOT_FOUND")
    assert_error(ada.patch(f"/api/v1/projects/{MISSING}", json={"name": "X"}), 404, "NOT_FOUND")
    assert_error(ada.post(f"/api/v1/projects/{MISSING}/tasks", json={"title": "X"}), 404, "NOT_FOUND")


# --- changing a project --------------------------------------------------------------------------


def test_patch_renames_and_describes_a_project(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    response = ada.patch(f"/api/v1/projects/{project['id']}", json={"name": "Gemini", "description": "Two"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["name"] == "Gemini" and data["description"] == "Two"
    assert data["version"] == project["version"] + 1
    read = ada.read(f"/api/v1/projects/{project['id']}", response.json()["meta"]["position"])
    assert read.json()["data"] == data


def test_patch_with_a_null_name_is_a_validation_error(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    error = assert_error(ada.patch(f"/api/v1/projects/{project['id']}", json={"name": None}), 400,
                         "VALIDATION_FAILED")
    assert field_names(error) == ["name"]


def test_patch_with_if_match_of_an_old_version_is_a_precondition_failure(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    ada.patch(f"/api/v1/projects/{project['id']}", json={"name": "Second"})
    stale = ada.patch(f"/api/v1/projects/{project['id']}", json={"name": "Third"}, headers={"If-Match": '"1"'})
    assert_error(stale, 412, "PRECONDITION_FAILED")
    ok = ada.patch(f"/api/v1/projects/{project['id']}", json={"name": "Third"}, headers={"If-Match": '"2"'})
    assert ok.status_code == 200


def test_a_malformed_if_match_is_a_validation_error(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    response = ada.patch(f"/api/v1/projects/{project['id']}", json={"name": "X"}, headers={"If-Match": "banana"})
    error = assert_error(response, 400, "VALIDATION_FAILED")
    assert field_names(error) == ["If-Match"]


def test_a_member_cannot_edit_the_project(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "member")
    assert_error(bob.patch(f"/api/v1/projects/{project['id']}", json={"name": "Mine"}), 403, "FORBIDDEN")
    assert_error(bob.post(f"/api/v1/projects/{project['id']}/archive"), 403, "FORBIDDEN")
    assert_error(bob.delete(f"/api/v1/projects/{project['id']}"), 403, "FORBIDDEN")


def test_a_project_admin_can_edit_but_not_delete_the_project(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "admin")
    assert bob.patch(f"/api/v1/projects/{project['id']}", json={"name": "Renamed"}).status_code == 200
    assert_error(bob.delete(f"/api/v1/projects/{project['id']}"), 403, "FORBIDDEN")


def test_the_workflow_can_be_replaced_and_tasks_follow_it(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    workflow = [
        {"name": "backlog", "category": "todo"},
        {"name": "doing", "category": "in_progress"},
        {"name": "shipped", "category": "done"},
    ]
    response = ada.put(f"/api/v1/projects/{project['id']}/workflow", json={"statuses": workflow})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["workflow"] == workflow
    read = ada.read(f"/api/v1/projects/{project['id']}", response.json()["meta"]["position"])
    assert read.json()["data"]["workflow"] == workflow

    task = create_task(ada, project["id"])["data"]
    assert task["status"] == "backlog"  # the first status of the workflow
    shipped = ada.patch(f"/api/v1/tasks/{task['id']}", json={"status": "shipped"})
    assert shipped.status_code == 200
    assert shipped.json()["data"]["completedAt"] is not None
    error = assert_error(ada.patch(f"/api/v1/tasks/{task['id']}", json={"status": "done"}), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["status"]


@pytest.mark.parametrize(
    "statuses",
    [
        [{"name": "only", "category": "done"}],
        [{"name": "a", "category": "todo"}, {"name": "b", "category": "in_progress"}],
        [{"name": "same", "category": "todo"}, {"name": "same", "category": "done"}],
        [{"name": "Bad Name", "category": "todo"}, {"name": "done", "category": "done"}],
        [{"name": "a", "category": "nope"}, {"name": "done", "category": "done"}],
    ],
    ids=["too-short", "no-done", "duplicate", "bad-name", "bad-category"],
)
def test_an_invalid_workflow_is_refused(client, statuses):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    response = ada.put(f"/api/v1/projects/{project['id']}/workflow", json={"statuses": statuses})
    error = assert_error(response, 400, "VALIDATION_FAILED")
    assert error["details"]
    assert all(f.startswith("statuses") for f in field_names(error))


def test_a_member_cannot_change_the_workflow(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "member")
    workflow = [{"name": "a", "category": "todo"}, {"name": "b", "category": "done"}]
    assert_error(bob.put(f"/api/v1/projects/{project['id']}/workflow", json={"statuses": workflow}), 403,
                 "FORBIDDEN")


# --- archive, restore, delete --------------------------------------------------------------------


def test_an_archived_project_refuses_new_tasks_until_restored(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    task = create_task(ada, project["id"])["data"]
    archived = ada.post(f"/api/v1/projects/{project['id']}/archive")
    assert archived.status_code == 200, archived.text
    assert archived.json()["data"]["archived"] is True
    read = ada.read(f"/api/v1/projects/{project['id']}", archived.json()["meta"]["position"])
    assert read.json()["data"]["archived"] is True

    assert_error(ada.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "No"}), 409, "CONFLICT")
    assert_error(ada.patch(f"/api/v1/tasks/{task['id']}", json={"title": "No"}), 409, "CONFLICT")
    assert_error(ada.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": "No"}), 409, "CONFLICT")
    assert_error(ada.patch(f"/api/v1/projects/{project['id']}", json={"name": "No"}), 409, "CONFLICT")
    assert_error(ada.post(f"/api/v1/projects/{project['id']}/archive"), 409, "CONFLICT")

    restored = ada.post(f"/api/v1/projects/{project['id']}/restore")
    assert restored.status_code == 200
    assert restored.json()["data"]["archived"] is False
    assert ada.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "Yes"}).status_code == 201


def test_restoring_a_project_that_is_not_archived_is_a_conflict(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    assert_error(ada.post(f"/api/v1/projects/{project['id']}/restore"), 409, "CONFLICT")


def test_an_archived_project_is_still_readable(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    task = create_task(ada, project["id"])["data"]
    archived = ada.post(f"/api/v1/projects/{project['id']}/archive")
    position = archived.json()["meta"]["position"]
    assert ada.read(f"/api/v1/projects/{project['id']}", position).status_code == 200
    assert ada.read(f"/api/v1/tasks/{task['id']}", position).status_code == 200


def test_a_deleted_project_is_gone_for_everyone(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "member")
    task = create_task(ada, project["id"])["data"]
    deleted = ada.delete(f"/api/v1/projects/{project['id']}")
    assert deleted.status_code == 200, deleted.text
    position = deleted.json()["meta"]["position"]
    for who in (ada, bob):
        assert_error(who.read(f"/api/v1/projects/{project['id']}", position), 404, "NOT_FOUND")
        assert_error(who.read(f"/api/v1/projects/{project['id']}/tasks", position), 404, "NOT_FOUND")
        assert_error(who.read(f"/api/v1/tasks/{task['id']}", position), 404, "NOT_FOUND")
        assert who.read("/api/v1/projects", position).json()["data"] == []
    assert_error(ada.patch(f"/api/v1/projects/{project['id']}", json={"name": "X"}), 404, "NOT_FOUND")
    assert_error(ada.delete(f"/api/v1/projects/{project['id']}"), 404, "NOT_FOUND")
    assert_error(ada.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "X"}), 404, "NOT_FOUND")


# --- members -------------------------------------------------------------------------------------


def test_an_owner_adds_changes_and_removes_members(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    added = ada.post(f"/api/v1/projects/{project['id']}/members", json={"userId": bob.id, "role": "viewer"})
    assert added.status_code == 201, added.text
    assert _members(added.json()["data"]) == {ada.id: "owner", bob.id: "viewer"}
    assert added.json()["data"]["memberCount"] == 2

    changed = ada.patch(f"/api/v1/projects/{project['id']}/members/{bob.id}", json={"role": "member"})
    assert changed.status_code == 200, changed.text
    assert _members(changed.json()["data"])[bob.id] == "member"
    read = ada.read(f"/api/v1/projects/{project['id']}", changed.json()["meta"]["position"])
    assert read.json()["data"] == changed.json()["data"]

    removed = ada.delete(f"/api/v1/projects/{project['id']}/members/{bob.id}")
    assert removed.status_code == 200
    assert _members(removed.json()["data"]) == {ada.id: "owner"}
    assert removed.json()["data"]["memberCount"] == 1
    read = ada.read(f"/api/v1/projects/{project['id']}", removed.json()["meta"]["position"])
    assert read.json()["data"] == removed.json()["data"]


def test_adding_a_member_defaults_to_the_member_role(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    response = ada.post(f"/api/v1/projects/{project['id']}/members", json={"userId": bob.id})
    assert response.status_code == 201
    assert _members(response.json()["data"])[bob.id] == "member"


def test_adding_someone_who_is_already_a_member_is_a_conflict(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "member")
    response = ada.post(f"/api/v1/projects/{project['id']}/members", json={"userId": bob.id, "role": "admin"})
    assert_error(response, 409, "CONFLICT")


def test_adding_an_unknown_user_is_not_found(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    response = ada.post(f"/api/v1/projects/{project['id']}/members", json={"userId": MISSING, "role": "member"})
    assert_error(response, 404, "NOT_FOUND")


def test_the_project_is_authorised_before_the_user_to_add_is_looked_up(client):
    # Someone who may not manage the members learns nothing about which users exist, and a stale
    # If-Match is refused whoever the user is.
    ada = signed_in(client)
    bob = signed_in(client)
    outsider = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "member")
    members = f"/api/v1/projects/{project['id']}/members"
    assert_error(bob.post(members, json={"userId": MISSING}), 403, "FORBIDDEN")
    assert assert_error(outsider.post(members, json={"userId": MISSING}), 404, "NOT_FOUND")["message"] == "project not found"
    stale = ada.post(members, json={"userId": MISSING}, headers={"If-Match": '"1"'})
    assert_error(stale, 412, "PRECONDITION_FAILED")


def test_adding_a_member_with_an_unknown_role_is_a_validation_error(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    response = ada.post(f"/api/v1/projects/{project['id']}/members", json={"userId": bob.id, "role": "king"})
    error = assert_error(response, 400, "VALIDATION_FAILED")
    assert field_names(error) == ["role"]


def test_changing_or_removing_a_non_member_is_not_found(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    assert_error(ada.patch(f"/api/v1/projects/{project['id']}/members/{bob.id}", json={"role": "admin"}), 404,
                 "NOT_FOUND")
    assert_error(ada.delete(f"/api/v1/projects/{project['id']}/members/{bob.id}"), 404, "NOT_FOUND")


def test_a_member_cannot_manage_members(client):
    ada = signed_in(client)
    bob = signed_in(client)
    cy = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "member")
    assert_error(bob.post(f"/api/v1/projects/{project['id']}/members", json={"userId": cy.id}), 403, "FORBIDDEN")
    assert_error(bob.patch(f"/api/v1/projects/{project['id']}/members/{ada.id}", json={"role": "viewer"}), 403,
                 "FORBIDDEN")
    assert_error(bob.delete(f"/api/v1/projects/{project['id']}/members/{ada.id}"), 403, "FORBIDDEN")


def test_a_viewer_cannot_manage_members(client):
    ada = signed_in(client)
    bob = signed_in(client)
    cy = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "viewer")
    assert_error(bob.post(f"/api/v1/projects/{project['id']}/members", json={"userId": cy.id}), 403, "FORBIDDEN")


def test_a_project_admin_manages_members_but_cannot_make_an_owner(client):
    ada = signed_in(client)
    bob = signed_in(client)
    cy = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "admin")
    assert_error(bob.post(f"/api/v1/projects/{project['id']}/members", json={"userId": cy.id, "role": "owner"}),
                 403, "FORBIDDEN")
    assert bob.post(f"/api/v1/projects/{project['id']}/members", json={"userId": cy.id, "role": "member"}) \
        .status_code == 201
    assert_error(bob.patch(f"/api/v1/projects/{project['id']}/members/{cy.id}", json={"role": "owner"}), 403,
                 "FORBIDDEN")
    assert_error(bob.patch(f"/api/v1/projects/{project['id']}/members/{bob.id}", json={"role": "owner"}), 403,
                 "FORBIDDEN")
    # Nor demote or remove an owner.
    assert_error(bob.patch(f"/api/v1/projects/{project['id']}/members/{ada.id}", json={"role": "viewer"}), 403,
                 "FORBIDDEN")
    assert_error(bob.delete(f"/api/v1/projects/{project['id']}/members/{ada.id}"), 403, "FORBIDDEN")
    assert bob.patch(f"/api/v1/projects/{project['id']}/members/{cy.id}", json={"role": "viewer"}).status_code == 200


def test_an_owner_can_make_another_owner_who_can_then_demote_the_first(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "owner")
    response = bob.patch(f"/api/v1/projects/{project['id']}/members/{ada.id}", json={"role": "member"})
    assert response.status_code == 200, response.text
    assert _members(response.json()["data"]) == {ada.id: "member", bob.id: "owner"}


def test_the_last_owner_cannot_be_removed_or_demoted(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    assert_error(ada.delete(f"/api/v1/projects/{project['id']}/members/{ada.id}"), 409, "CONFLICT")
    assert_error(ada.patch(f"/api/v1/projects/{project['id']}/members/{ada.id}", json={"role": "admin"}), 409,
                 "CONFLICT")


def test_a_member_may_leave_a_project(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "viewer")
    left = bob.delete(f"/api/v1/projects/{project['id']}/members/{bob.id}")
    assert left.status_code == 200, left.text
    assert_error(bob.read(f"/api/v1/projects/{project['id']}", left.json()["meta"]["position"]), 404, "NOT_FOUND")


def test_a_removed_member_can_no_longer_read_or_write(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "member")
    task = create_task(bob, project["id"])["data"]
    removed = ada.delete(f"/api/v1/projects/{project['id']}/members/{bob.id}")
    position = removed.json()["meta"]["position"]
    assert_error(bob.read(f"/api/v1/projects/{project['id']}", position), 404, "NOT_FOUND")
    assert_error(bob.read(f"/api/v1/projects/{project['id']}/tasks", position), 404, "NOT_FOUND")
    assert_error(bob.read(f"/api/v1/tasks/{task['id']}", position), 404, "NOT_FOUND")
    assert_error(bob.read(f"/api/v1/tasks/{task['id']}/history", position), 404, "NOT_FOUND")
    assert_error(bob.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "X"}), 404, "NOT_FOUND")
    assert_error(bob.patch(f"/api/v1/tasks/{task['id']}", json={"title": "X"}), 404, "NOT_FOUND")
    assert_error(bob.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": "X"}), 404, "NOT_FOUND")
    assert bob.read("/api/v1/projects", position).json()["data"] == []


# --- visibility: 404 for strangers, 403 for roles ------------------------------------------------


def test_a_non_member_gets_404_for_the_project_and_everything_in_it(client):
    ada = signed_in(client)
    stranger = signed_in(client)
    project = create_project(ada)["data"]
    task = create_task(ada, project["id"])["data"]
    comment = add_comment(ada, task["id"])
    position = comment["meta"]["position"]
    comment_id = comment["data"]["id"]
    pid, tid = project["id"], task["id"]
    reads = [
        f"/api/v1/projects/{pid}",
        f"/api/v1/projects/{pid}/tasks",
        f"/api/v1/projects/{pid}/members",
        f"/api/v1/projects/{pid}/history",
        f"/api/v1/tasks/{tid}",
        f"/api/v1/tasks/{tid}/comments",
        f"/api/v1/tasks/{tid}/activity",
        f"/api/v1/tasks/{tid}/history",
        f"/api/v1/comments/{comment_id}/history",
    ]
    for path in reads:
        assert_error(stranger.read(path, position), 404, "NOT_FOUND")
    writes = [
        ("PATCH", f"/api/v1/projects/{pid}", {"name": "X"}),
        ("PUT", f"/api/v1/projects/{pid}/workflow",
         {"statuses": [{"name": "a", "category": "todo"}, {"name": "b", "category": "done"}]}),
        ("POST", f"/api/v1/projects/{pid}/archive", None),
        ("POST", f"/api/v1/projects/{pid}/restore", None),
        ("DELETE", f"/api/v1/projects/{pid}", None),
        ("POST", f"/api/v1/projects/{pid}/members", {"userId": stranger.id, "role": "owner"}),
        ("PATCH", f"/api/v1/projects/{pid}/members/{ada.id}", {"role": "viewer"}),
        ("DELETE", f"/api/v1/projects/{pid}/members/{ada.id}", None),
        ("POST", f"/api/v1/projects/{pid}/tasks", {"title": "X"}),
        ("PATCH", f"/api/v1/tasks/{tid}", {"title": "X"}),
        ("DELETE", f"/api/v1/tasks/{tid}", None),
        ("POST", f"/api/v1/tasks/{tid}/comments", {"body": "X"}),
        ("PATCH", f"/api/v1/comments/{comment_id}", {"body": "X"}),
        ("DELETE", f"/api/v1/comments/{comment_id}", None),
    ]
    for method, path, body in writes:
        response = client.request(method, path, json=body, headers=stranger.headers)
        assert_error(response, 404, "NOT_FOUND")
    # The stranger's attempts changed nothing.
    still = ada.read(f"/api/v1/projects/{pid}", position).json()["data"]
    assert _members(still) == {ada.id: "owner"}


def test_a_viewer_reads_everything_but_cannot_write(client):
    ada = signed_in(client)
    viewer = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], viewer, "viewer")
    task = create_task(ada, project["id"])
    position = task["meta"]["position"]
    tid = task["data"]["id"]
    assert viewer.read(f"/api/v1/projects/{project['id']}", position).status_code == 200
    assert viewer.read(f"/api/v1/projects/{project['id']}/tasks", position).status_code == 200
    assert viewer.read(f"/api/v1/tasks/{tid}", position).status_code == 200
    assert viewer.read(f"/api/v1/tasks/{tid}/history", position).status_code == 200
    assert_error(viewer.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "X"}), 403, "FORBIDDEN")
    assert_error(viewer.patch(f"/api/v1/tasks/{tid}", json={"title": "X"}), 403, "FORBIDDEN")
    assert_error(viewer.delete(f"/api/v1/tasks/{tid}"), 403, "FORBIDDEN")
    assert_error(viewer.post(f"/api/v1/tasks/{tid}/comments", json={"body": "X"}), 403, "FORBIDDEN")


def test_a_system_admin_acts_as_an_owner_of_every_project(client, system):
    admin = make_admin(system, client)
    ada = signed_in(client)
    project = create_project(ada)["data"]
    task = create_task(admin, project["id"])
    assert admin.read(f"/api/v1/projects/{project['id']}", task["meta"]["position"]).status_code == 200
    assert admin.patch(f"/api/v1/projects/{project['id']}", json={"name": "By admin"}).status_code == 200
