"""Task: a unit of work in a project, moved through the project's workflow.

The project is passed in where a rule needs it (the workflow for a move, the members for an
assignment): the task reads it and never changes it.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain import clock
from domain.base import TaskFlowAggregate, require_text
from domain.errors import InvalidInput, NotFound
from domain.project import Project

PRIORITIES = ("low", "medium", "high", "urgent")
MAX_LABELS = 20
EDITABLE_FIELDS = ("title", "description", "priority", "due_date", "start_date", "estimate", "labels")


def _check_date(field_name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        raise InvalidInput.on(field_name, f"{field_name} must be a date (YYYY-MM-DD)") from None


def _check_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise the editable fields present in ``fields``."""
    checked: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "title":
            checked[name] = require_text("title", value, max_length=200)
        elif name == "description":
            checked[name] = (value or "").strip()[:20_000]
        elif name == "priority":
            if value not in PRIORITIES:
                raise InvalidInput.on("priority", f"priority must be one of {', '.join(PRIORITIES)}")
            checked[name] = value
        elif name in ("due_date", "start_date"):
            checked[name] = _check_date(name, value)
        elif name == "estimate":
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
                raise InvalidInput.on("estimate", "estimate must be a finite number >= 0")
            checked[name] = None if value is None else float(value)
        elif name == "labels":
            labels = sorted({require_text("labels", label, max_length=50) for label in value or []})
            if len(labels) > MAX_LABELS:
                raise InvalidInput.on("labels", f"at most {MAX_LABELS} labels")
            checked[name] = labels
        else:
            raise InvalidInput.on(name, f"{name} cannot be changed")
    return checked


def _check_dates_in_order(start: str | None, due: str | None) -> None:
    if start and due and due < start:
        raise InvalidInput.on("dueDate", "dueDate must not be before startDate")


class Task(TaskFlowAggregate):
    @event("Created")
    def __init__(
        self,
        project_id: UUID,
        title: str,
        description: str,
        priority: str,
        status: str,
        assignee_ids: list[UUID],
        due_date: str | None,
        start_date: str | None,
        estimate: float | None,
        labels: list[str],
        parent_id: UUID | None,
        created_by: UUID,
        status_category: str,
    ) -> None:
        self.project_id = project_id
        self.title = title
        self.description = description
        self.priority = priority
        self.status = status
        self.assignee_ids = list(assignee_ids)
        self.due_date = due_date
        self.start_date = start_date
        self.estimate = estimate
        self.labels = list(labels)
        self.parent_id = parent_id
        self.created_by = created_by
        # Created straight into a done status: completed when created (same on every replay).
        self.status_category = status_category
        self.completed_at: datetime | None = self.created_on if status_category == "done" else None
        self.deleted = False

    @classmethod
    def create(
        cls,
        project: Project,
        created_by: UUID,
        title: str,
        *,
        description: str = "",
        priority: str = "medium",
        status: str | None = None,
        assignee_ids: list[UUID] | None = None,
        due_date: str | None = None,
        start_date: str | None = None,
        estimate: float | None = None,
        labels: list[str] | None = None,
        parent: Task | None = None,
    ) -> Task:
        project.require_open_for_tasks()
        fields = _check_fields(
            {
                "title": title,
                "description": description,
                "priority": priority,
                "due_date": due_date,
                "start_date": start_date,
                "estimate": estimate,
                "labels": labels or [],
            }
        )
        _check_dates_in_order(fields["start_date"], fields["due_date"])
        status = status or project.initial_status
        category = project.category_of(status)
        assignees = list(dict.fromkeys(assignee_ids or []))
        for user_id in assignees:
            _require_member(project, user_id)
        if parent is not None and (parent.project_id != project.id or parent.deleted):
            raise InvalidInput.on("parentId", "parent must be a task of the same project")
        return cls(
            project_id=project.id,
            status=status,
            status_category=category,
            assignee_ids=assignees,
            parent_id=parent.id if parent else None,
            created_by=created_by,
            **fields,
        )

    def update(self, **fields: Any) -> None:
        self._require_live()
        checked = _check_fields(fields)
        _check_dates_in_order(
            checked.get("start_date", self.start_date), checked.get("due_date", self.due_date)
        )
        changes = {k: v for k, v in checked.items() if getattr(self, k) != v}
        if changes:
            self._updated(changes=changes)

    @event("Updated")
    def _updated(self, changes: dict[str, Any]) -> None:
        for attribute, value in changes.items():
            setattr(self, attribute, value)

    def move(self, project: Project, status: str) -> None:
        """Move to ``status`` of the project's workflow; entering 'done' records completed_at."""
        self._require_live()
        category = project.category_of(status)
        if status == self.status:
            return
        # Recorded in the event, so every replay (and every read model) agrees on the time.
        completed_at = clock.now() if category == "done" else None
        self._moved(from_status=self.status, from_category=self.status_category, to_status=status,
                    category=category, completed_at=completed_at)

    class Moved(TaskFlowAggregate.Event):
        """Version 2 added ``from_category``: the workflow category of the status the task left,
        as it was when the task moved (a later workflow change may rename or drop that status)."""

        from_status: str
        to_status: str
        category: str
        completed_at: datetime | None
        from_category: str | None
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Moves stored before version 2 did not record it, and it cannot be recovered from
            # the event alone: unknown.
            state["from_category"] = None

    @event(Moved)
    def _moved(self, from_status: str, from_category: str | None, to_status: str, category: str,
               completed_at: datetime | None) -> None:
        self.status = to_status
        self.status_category = category
        self.completed_at = completed_at

    def assign(self, project: Project, user_id: UUID) -> None:
        self._require_live()
        _require_member(project, user_id)
        if user_id not in self.assignee_ids:
            self._assigned(user_id=user_id)

    @event("Assigned")
    def _assigned(self, user_id: UUID) -> None:
        self.assignee_ids.append(user_id)

    def unassign(self, user_id: UUID) -> None:
        self._require_live()
        if user_id not in self.assignee_ids:
            raise NotFound("user is not assigned to this task")
        self._unassigned(user_id=user_id)

    @event("Unassigned")
    def _unassigned(self, user_id: UUID) -> None:
        self.assignee_ids.remove(user_id)

    def delete(self) -> None:
        self._require_live()
        self._deleted()

    @event("Deleted")
    def _deleted(self) -> None:
        self.deleted = True

    def _require_live(self) -> None:
        if self.deleted:
            raise NotFound("task not found")


def _require_member(project: Project, user_id: UUID) -> None:
    if not project.is_member(user_id):
        raise InvalidInput.on("assigneeIds", "assignees must be members of the project")

