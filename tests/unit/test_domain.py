"""The aggregates' rules, checked without any storage."""

from __future__ import annotations

import uuid

import pytest

from domain.comment import Comment
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.project import Permission, Project
from domain.task import Task
from domain.user import User


def new_project() -> tuple[Project, uuid.UUID]:
    owner = uuid.uuid4()
    return Project.create(owner, "Apollo"), owner


# --- users ---------------------------------------------------------------------------------------
def test_registering_lowercases_the_email_and_grants_the_user_role():
    user = User.register("Ada@Example.COM ", "Ada", "hash")
    assert user.email == "ada@example.com"
    assert user.roles == ["user"]
    assert user.active


@pytest.mark.parametrize("email", ["", "no-at-sign", "a@b", "two@@example.com"])
def test_registering_with_a_broken_email_is_refused_with_the_field_named(email):
    with pytest.raises(InvalidInput) as refused:
        User.register(email, "Ada", "hash")
    assert refused.value.details[0].field == "email"


def test_a_deactivated_user_cannot_change_or_be_deactivated_again():
    user = User.register("ada@example.com", "Ada", "hash")
    user.deactivate()
    with pytest.raises(Conflict):
        user.update_profile("Other")
    with pytest.raises(Conflict):
        user.deactivate()


def test_the_user_role_cannot_be_revoked_but_others_can():
    user = User.register("ada@example.com", "Ada", "hash")
    user.grant_role("auditor")
    user.revoke_role("auditor")
    assert user.roles == ["user"]
    with pytest.raises(Conflict):
        user.revoke_role("user")
    with pytest.raises(InvalidInput):
        user.grant_role("emperor")


def test_an_unchanged_profile_writes_no_event():
    user = User.register("ada@example.com", "Ada", "hash")
    user.collect_events()
    user.update_profile("Ada")
    assert user.collect_events() == []


# --- projects ------------------------------------------------------------------------------------
def test_a_new_project_has_its_creator_as_owner_and_the_default_workflow():
    project, owner = new_project()
    assert project.members == {owner: "owner"}
    assert project.status_names == ["todo", "in_progress", "in_review", "done", "cancelled"]


def test_a_non_member_is_told_the_project_does_not_exist():
    project, _ = new_project()
    with pytest.raises(NotFound):
        project.authorize(uuid.uuid4(), Permission.READ)


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        ("viewer", Permission.READ, True),
        ("viewer", Permission.WRITE_TASKS, False),
        ("member", Permission.WRITE_TASKS, True),
        ("member", Permission.MANAGE_MEMBERS, False),
        ("admin", Permission.MANAGE_MEMBERS, True),
        ("admin", Permission.DELETE_PROJECT, False),
        ("owner", Permission.DELETE_PROJECT, True),
    ],
)
def test_what_each_project_role_may_do(role, permission, allowed):
    project, owner = new_project()
    someone = uuid.uuid4()
    project.add_member(owner, someone, role)
    if allowed:
        project.authorize(someone, permission)
    else:
        with pytest.raises(Forbidden):
            project.authorize(someone, permission)


def test_a_project_admin_cannot_make_an_owner_but_an_owner_can():
    project, owner = new_project()
    admin, other = uuid.uuid4(), uuid.uuid4()
    project.add_member(owner, admin, "admin")
    with pytest.raises(Forbidden):
        project.add_member(admin, other, "owner")
    project.add_member(owner, other, "owner")
    assert project.role_of(other) == "owner"


def test_the_last_owner_cannot_leave_or_be_demoted():
    project, owner = new_project()
    with pytest.raises(Conflict):
        project.remove_member(owner, owner)
    with pytest.raises(Conflict):
        project.change_member_role(owner, owner, "admin")


def test_an_archived_project_refuses_changes_until_restored():
    project, owner = new_project()
    project.archive()
    with pytest.raises(Conflict):
        project.update(name="New name")
    with pytest.raises(Conflict):
        Task.create(project, owner, "A task")
    project.restore()
    project.update(name="New name")
    assert project.name == "New name"


def test_a_workflow_needs_a_done_status_and_unique_names():
    project, _ = new_project()
    with pytest.raises(InvalidInput):
        project.change_workflow([{"name": "a", "category": "todo"}, {"name": "b", "category": "in_progress"}])
    with pytest.raises(InvalidInput):
        project.change_workflow([{"name": "a", "category": "todo"}, {"name": "a", "category": "done"}])
    project.change_workflow([{"name": "open", "category": "todo"}, {"name": "closed", "category": "done"}])
    assert project.status_names == ["open", "closed"]


def test_a_deleted_project_is_not_found_by_anyone():
    project, owner = new_project()
    project.delete()
    with pytest.raises(NotFound):
        project.authorize(owner, Permission.READ)


# --- tasks ---------------------------------------------------------------------------------------
def test_a_new_task_starts_in_the_first_status_of_the_workflow():
    project, owner = new_project()
    task = Task.create(project, owner, "Write the spec")
    assert task.status == "todo"
    assert task.priority == "medium"
    assert task.completed_at is None


def test_moving_a_task_to_done_records_completed_at_and_moving_back_clears_it():
    project, owner = new_project()
    task = Task.create(project, owner, "Ship it")
    task.move(project, "done")
    assert task.completed_at is not None and task.completed_at >= task.created_on
    task.move(project, "in_progress")
    assert task.completed_at is None


def test_a_task_cannot_move_to_a_status_outside_its_projects_workflow():
    project, owner = new_project()
    task = Task.create(project, owner, "Ship it")
    with pytest.raises(InvalidInput) as refused:
        task.move(project, "launched")
    assert refused.value.details[0].field == "status"
    assert task.status == "todo"


def test_only_project_members_can_be_assigned():
    project, owner = new_project()
    task = Task.create(project, owner, "Ship it")
    with pytest.raises(InvalidInput):
        task.assign(project, uuid.uuid4())
    task.assign(project, owner)
    assert task.assignee_ids == [owner]


def test_due_date_before_start_date_is_refused():
    project, owner = new_project()
    with pytest.raises(InvalidInput):
        Task.create(project, owner, "Ship it", start_date="2026-05-02", due_date="2026-05-01")


@pytest.mark.parametrize(
    ("field", "value"),
    [("title", "   "), ("priority", "whenever"), ("estimate", -1), ("due_date", "next tuesday"), ("labels", [""])],
)
def test_invalid_task_fields_are_refused_before_any_event(field, value):
    project, owner = new_project()
    task = Task.create(project, owner, "Ship it")
    task.collect_events()
    with pytest.raises(InvalidInput):
        task.update(**{field: value})
    assert task.collect_events() == []


def test_a_deleted_task_accepts_no_more_commands():
    project, owner = new_project()
    task = Task.create(project, owner, "Ship it")
    task.delete()
    with pytest.raises(NotFound):
        task.update(title="Again")
    with pytest.raises(NotFound):
        task.move(project, "done")


# --- comments ------------------------------------------------------------------------------------
def test_only_the_author_edits_or_deletes_a_comment():
    author, other = uuid.uuid4(), uuid.uuid4()
    comment = Comment.add(uuid.uuid4(), uuid.uuid4(), author, "First!")
    with pytest.raises(Forbidden):
        comment.edit(other, "Hijacked")
    with pytest.raises(Forbidden):
        comment.delete(other)
    comment.edit(author, "Second thoughts")
    comment.delete(author)
    with pytest.raises(NotFound):
        comment.edit(author, "Too late")
