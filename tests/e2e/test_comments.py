"""Comments on tasks (author-only edits) and a task's activity feed."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import (
    add_comment,
    add_member,
    assert_error,
    create_project,
    create_task,
    field_names,
    is_iso_utc,
    signed_in,
)
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def task_team(client):
    owner = signed_in(client, name="Owner")
    member = signed_in(client, name="Member")
    viewer = signed_in(client, name="Viewer")
    project = create_project(owner)["data"]
    add_member(owner, project["id"], member, "member")
    add_member(owner, project["id"], viewer, "viewer")
    task = create_task(owner, project["id"])["data"]
    return owner, member, viewer, task


def test_a_member_comments_on_a_task(client, task_team):
    owner, member, _, task = task_team
    response = member.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": "  On it!  "})
    assert response.status_code == 201, response.text
    comment = response.json()["data"]
    assert comment["body"] == "On it!"
    assert comment["taskId"] == task["id"]
    assert comment["projectId"] == task["projectId"]
    assert comment["authorId"] == member.id
    assert comment["version"] == 1
    assert is_iso_utc(comment["createdAt"])
    assert response.headers["ETag"] == '"1"'


def test_a_written_comment_equals_the_comment_the_read_api_lists(client, task_team):
    owner, member, _, task = task_team
    written = add_comment(member, task["id"], "Hello")
    listed = owner.read(f"/api/v1/tasks/{task['id']}/comments", written["meta"]["position"])
    assert listed.status_code == 200
    assert listed.json()["data"] == [written["data"]]
    edited = member.patch(f"/api/v1/comments/{written['data']['id']}", json={"body": "Hello again"})
    listed = owner.read(f"/api/v1/tasks/{task['id']}/comments", edited.json()["meta"]["position"])
    assert listed.json()["data"] == [edited.json()["data"]]


def test_comments_are_listed_oldest_first(client, task_team):
    owner, member, _, task = task_team
    first = add_comment(owner, task["id"], "first")
    add_comment(member, task["id"], "second")
    last = add_comment(owner, task["id"], "third")
    listed = member.read(f"/api/v1/tasks/{task['id']}/comments", last["meta"]["position"])
    assert [c["body"] for c in listed.json()["data"]] == ["first", "second", "third"]
    assert listed.json()["meta"]["total"] == 3
    assert listed.json()["data"][0]["id"] == first["data"]["id"]
    assert "X-Projection-Position" in listed.headers


def test_comments_list_can_be_filtered_by_author(client, task_team):
    owner, member, _, task = task_team
    add_comment(owner, task["id"], "mine")
    last = add_comment(member, task["id"], "theirs")
    listed = owner.read(f"/api/v1/tasks/{task['id']}/comments?filter[authorId]={member.id}", last["meta"]["position"])
    assert [c["body"] for c in listed.json()["data"]] == ["theirs"]


def test_a_viewer_cannot_comment(client, task_team):
    _, _, viewer, task = task_team
    assert_error(viewer.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": "Me too"}), 403, "FORBIDDEN")


def test_a_viewer_can_read_comments(client, task_team):
    owner, _, viewer, task = task_team
    written = add_comment(owner, task["id"])
    listed = viewer.read(f"/api/v1/tasks/{task['id']}/comments", written["meta"]["position"])
    assert [c["id"] for c in listed.json()["data"]] == [written["data"]["id"]]


def test_an_empty_comment_is_a_validation_error(client, task_team):
    owner, _, _, task = task_team
    for body in ({"body": ""}, {"body": "   "}, {}, {"body": "x" * 10_001}):
        error = assert_error(owner.post(f"/api/v1/tasks/{task['id']}/comments", json=body), 400, "VALIDATION_FAILED")
        assert field_names(error) == ["body"]


def test_commenting_on_an_unknown_task_is_not_found(client, task_team):
    owner, _, _, _ = task_team
    assert_error(owner.post(f"/api/v1/tasks/{MISSING}/comments", json={"body": "X"}), 404, "NOT_FOUND")
    assert_error(owner.get(f"/api/v1/tasks/{MISSING}/comments"), 404, "NOT_FOUND")


def test_the_author_edits_their_comment(client, task_team):
    _, member, _, task = task_team
    comment = add_comment(member, task["id"], "typo")["data"]
    response = member.patch(f"/api/v1/comments/{comment['id']}", json={"body": "fixed"})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["body"] == "fixed"
    assert response.json()["data"]["version"] == 2
    assert response.headers["ETag"] == '"2"'


def test_editing_a_comment_with_a_stale_if_match_is_refused(client, task_team):
    _, member, _, task = task_team
    comment = add_comment(member, task["id"], "one")["data"]
    member.patch(f"/api/v1/comments/{comment['id']}", json={"body": "two"})
    stale = member.patch(f"/api/v1/comments/{comment['id']}", json={"body": "three"}, headers={"If-Match": '"1"'})
    assert_error(stale, 412, "PRECONDITION_FAILED")


def test_another_member_cannot_edit_or_delete_a_comment(client, task_team):
    owner, member, _, task = task_team
    comment = add_comment(member, task["id"], "mine")["data"]
    # Not even the project owner: comments belong to their author.
    assert_error(owner.patch(f"/api/v1/comments/{comment['id']}", json={"body": "yours"}), 403, "FORBIDDEN")
    assert_error(owner.delete(f"/api/v1/comments/{comment['id']}"), 403, "FORBIDDEN")


def test_the_author_deletes_their_comment_and_it_leaves_the_list(client, task_team):
    owner, member, _, task = task_team
    kept = add_comment(owner, task["id"], "kept")["data"]
    comment = add_comment(member, task["id"], "bye")["data"]
    deleted = member.delete(f"/api/v1/comments/{comment['id']}")
    assert deleted.status_code == 200, deleted.text
    listed = owner.read(f"/api/v1/tasks/{task['id']}/comments", deleted.json()["meta"]["position"])
    assert [c["id"] for c in listed.json()["data"]] == [kept["id"]]
    assert_error(member.patch(f"/api/v1/comments/{comment['id']}", json={"body": "back"}), 404, "NOT_FOUND")
    assert_error(member.delete(f"/api/v1/comments/{comment['id']}"), 404, "NOT_FOUND")
    # Its history stays readable.
    history = owner.read(f"/api/v1/comments/{comment['id']}/history", deleted.json()["meta"]["position"])
    assert [e["type"] for e in history.json()["data"]] == ["Comment.Added", "Comment.Deleted"]


def test_comments_cannot_be_edited_or_deleted_while_the_project_is_archived(client, task_team):
    owner, member, _, task = task_team
    comment = add_comment(member, task["id"], "before")["data"]
    assert owner.post(f"/api/v1/projects/{task['projectId']}/archive").status_code == 200
    assert_error(member.patch(f"/api/v1/comments/{comment['id']}", json={"body": "after"}), 409, "CONFLICT")
    assert_error(member.delete(f"/api/v1/comments/{comment['id']}"), 409, "CONFLICT")


def test_an_unknown_comment_is_not_found(client, task_team):
    owner, _, _, _ = task_team
    assert_error(owner.patch(f"/api/v1/comments/{MISSING}", json={"body": "X"}), 404, "NOT_FOUND")
    assert_error(owner.delete(f"/api/v1/comments/{MISSING}"), 404, "NOT_FOUND")


def test_a_comment_with_an_idempotency_key_is_added_once(client, task_team):
    owner, _, _, task = task_team
    headers = {"Idempotency-Key": "comment-1"}
    first = owner.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": "once"}, headers=headers)
    again = owner.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": "once"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    listed = owner.read(f"/api/v1/tasks/{task['id']}/comments", again.json()["meta"]["position"])
    assert len(listed.json()["data"]) == 1


# --- activity ------------------------------------------------------------------------------------


def test_the_activity_feed_lists_what_happened_in_order_with_who_did_it(client, task_team):
    owner, member, _, task = task_team
    member.patch(f"/api/v1/tasks/{task['id']}", json={"status": "in_progress"})
    member.patch(f"/api/v1/tasks/{task['id']}", json={"title": "Renamed"})
    comment = add_comment(owner, task["id"], "nice")
    member.patch(f"/api/v1/tasks/{task['id']}", json={"assigneeIds": [member.id]})
    owner.patch(f"/api/v1/comments/{comment['data']['id']}", json={"body": "very nice"})
    last = owner.delete(f"/api/v1/comments/{comment['data']['id']}")

    response = member.read(f"/api/v1/tasks/{task['id']}/activity", last.json()["meta"]["position"])
    assert response.status_code == 200, response.text
    feed = response.json()["data"]
    assert [a["type"] for a in feed] == [
        "task.created", "task.moved", "task.updated", "comment.added", "task.assigned", "comment.edited",
        "comment.deleted",
    ]
    assert [a["actorId"] for a in feed] == [owner.id, member.id, member.id, owner.id, member.id, owner.id, owner.id]
    positions = [a["position"] for a in feed]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert all(a["taskId"] == task["id"] for a in feed)
    assert feed[1]["data"] == {"from": "todo", "to": "in_progress"}
    assert feed[3]["commentId"] == comment["data"]["id"]
    assert all(is_iso_utc(a["occurredAt"]) for a in feed)


def test_the_activity_feed_is_hidden_from_non_members(client, task_team):
    owner, _, _, task = task_team
    stranger = signed_in(client)
    written = add_comment(owner, task["id"])
    assert owner.read(f"/api/v1/tasks/{task['id']}/activity", written["meta"]["position"]).status_code == 200
    assert_error(stranger.read(f"/api/v1/tasks/{task['id']}/activity", written["meta"]["position"]), 404, "NOT_FOUND")


def test_the_activity_feed_can_be_filtered_by_type(client, task_team):
    owner, _, _, task = task_team
    add_comment(owner, task["id"], "one")
    last = add_comment(owner, task["id"], "two")
    response = owner.read(f"/api/v1/tasks/{task['id']}/activity?filter[type]=comment.added", last["meta"]["position"])
    assert [a["data"]["body"] for a in response.json()["data"]] == ["one", "two"]
