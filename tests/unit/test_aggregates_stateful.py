"""Hypothesis state machines: any sequence of commands on a project and its task.

After every step: the aggregate rebuilt from its events equals the live one; a refused command
changes nothing; a task's status is always one of its project's workflow statuses when set; a
removed member can do nothing at all.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.errors import TaskFlowError
from domain.project import PROJECT_ROLES, Permission, Project
from domain.task import PRIORITIES, Task

USERS = [uuid.UUID(int=i) for i in range(1, 6)]
STATUS_NAMES = ["todo", "doing", "review", "done", "cancelled", "blocked"]
CATEGORIES = ["todo", "in_progress", "done", "cancelled"]


def replay(events: list[Any]) -> Any:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def state_of(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


class ProjectAndTask(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.owner = USERS[0]
        self.project = Project.create(self.owner, "Apollo")
        self.project_events = list(self.project.collect_events())
        self.task: Task | None = None
        self.task_events: list[Any] = []
        self.removed: set[uuid.UUID] = set()

    def attempt(self, aggregate: Any, command: Any) -> None:
        """Run a command; if the domain refuses it, the aggregate must not have changed."""
        before = copy.deepcopy(state_of(aggregate))
        try:
            command()
        except TaskFlowError:
            assert state_of(aggregate) == before
            assert aggregate.pending_events == []
        self.collect()

    def collect(self) -> None:
        self.project_events += self.project.collect_events()
        if self.task is not None:
            self.task_events += self.task.collect_events()

    # --- project rules -----------------------------------------------------------------------
    @rule(actor=st.sampled_from(USERS), user=st.sampled_from(USERS), role=st.sampled_from(PROJECT_ROLES))
    def add_member(self, actor, user, role):
        def command():
            self.project.authorize(actor, Permission.MANAGE_MEMBERS)
            self.project.add_member(actor, user, role)
            self.removed.discard(user)

        self.attempt(self.project, command)

    @rule(actor=st.sampled_from(USERS), user=st.sampled_from(USERS), role=st.sampled_from(PROJECT_ROLES))
    def change_role(self, actor, user, role):
        def command():
            self.project.authorize(actor, Permission.MANAGE_MEMBERS)
            self.project.change_member_role(actor, user, role)

        self.attempt(self.project, command)

    @rule(actor=st.sampled_from(USERS), user=st.sampled_from(USERS))
    def remove_member(self, actor, user):
        def command():
            self.project.authorize(actor, Permission.READ if actor == user else Permission.MANAGE_MEMBERS)
            self.project.remove_member(actor, user)
            self.removed.add(user)

        self.attempt(self.project, command)

    @rule(statuses=st.lists(st.tuples(st.sampled_from(STATUS_NAMES), st.sampled_from(CATEGORIES)), max_size=6))
    def change_workflow(self, statuses):
        self.attempt(
            self.project, lambda: self.project.change_workflow([{"name": n, "category": c} for n, c in statuses])
        )

    @rule()
    def archive(self):
        self.attempt(self.project, self.project.archive)

    @rule()
    def restore(self):
        self.attempt(self.project, self.project.restore)

    # --- task rules --------------------------------------------------------------------------
    @precondition(lambda self: self.task is None)
    @rule(title=st.text(max_size=30), priority=st.sampled_from(PRIORITIES), status=st.sampled_from(STATUS_NAMES))
    def create_task(self, title, priority, status):
        try:
            self.task = Task.create(self.project, self.owner, title, priority=priority, status=status)
        except TaskFlowError:
            return
        assert self.task.status in self.project.status_names
        self.collect()

    @precondition(lambda self: self.task is not None)
    @rule(status=st.sampled_from(STATUS_NAMES))
    def move(self, status):
        task = self.task
        before = task.status
        self.attempt(task, lambda: task.move(self.project, status))
        if task.status != before:
            assert task.status == status
            assert status in self.project.status_names

    @precondition(lambda self: self.task is not None)
    @rule(
        fields=st.fixed_dictionaries(
            {},
            optional={
                "title": st.text(max_size=30),
                "priority": st.sampled_from([*PRIORITIES, "whenever"]),
                "estimate": st.none() | st.floats(min_value=-5, max_value=100, allow_nan=False),
                "labels": st.lists(st.sampled_from(["bug", "ui", "", "api"]), max_size=4),
                "due_date": st.none() | st.sampled_from(["2026-01-01", "2026-02-01", "not a date"]),
                "start_date": st.none() | st.sampled_from(["2026-01-15", "2026-03-01"]),
            },
        )
    )
    def update(self, fields):
        task = self.task
        self.attempt(task, lambda: task.update(**fields))

    @precondition(lambda self: self.task is not None)
    @rule(user=st.sampled_from(USERS), assign=st.booleans())
    def assignment(self, user, assign):
        task = self.task
        self.attempt(task, lambda: task.assign(self.project, user) if assign else task.unassign(user))

    @precondition(lambda self: self.task is not None)
    @rule()
    def delete_task(self):
        self.attempt(self.task, self.task.delete)

    # --- invariants --------------------------------------------------------------------------
    @invariant()
    def rebuilt_from_events_equals_live(self):
        assert replay(self.project_events) == self.project
        if self.task is not None:
            assert replay(self.task_events) == self.task

    @invariant()
    def a_removed_member_can_do_nothing(self):
        for user in self.removed:
            for permission in Permission:
                try:
                    self.project.authorize(user, permission)
                except TaskFlowError as refused:
                    assert refused.code == "NOT_FOUND"
                else:
                    raise AssertionError(f"removed member {user} may {permission}")

    @invariant()
    def the_project_always_keeps_an_owner(self):
        assert "owner" in self.project.members.values()

    @invariant()
    def assignees_were_members_when_assigned(self):
        if self.task is not None:
            assert len(set(self.task.assignee_ids)) == len(self.task.assignee_ids)


ProjectAndTask.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestProjectAndTask = ProjectAndTask.TestCase
