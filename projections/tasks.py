"""Tasks read model: one row per task, a column for every field a client filters or sorts on.

Handles: Task.Created, Updated, Moved, Assigned, Unassigned, Deleted.
Writes: table ``tasks``.
"""

from __future__ import annotations

from typing import Any

from domain.clock import iso_utc
from domain.task import PRIORITIES, Task
from projections.base import Projection, handles
from projections.common import BOOKKEEPING, created, ids, touched
from projections.schema import Column, Table, instant, text, uuid
from projections.store import ProjectionTransaction

TASKS = Table(
    "tasks",
    (
        uuid("id", filterable=True),
        uuid("project_id", filterable=True),
        text("title", filterable=True, sortable=True),
        text("description", filterable=True),
        text("status", filterable=True, sortable=True),
        text("priority", filterable=True, sortable=True, ranked=PRIORITIES),
        Column("assignee_ids", "json", filterable=True, items="uuid"),
        Column("labels", "json", filterable=True),
        Column("due_date", "date", filterable=True, sortable=True),
        Column("start_date", "date", filterable=True, sortable=True),
        Column("estimate", "float", filterable=True, sortable=True),
        uuid("parent_id", filterable=True),
        uuid("created_by", filterable=True),
        instant("completed_at", filterable=True, sortable=True),
        Column("deleted", "bool", public=False),
        *BOOKKEEPING,
    ),
    primary_key=("id",),
    indexes=(("project_id", "status"), ("project_id", "created_at")),
)


class TasksProjection(Projection):
    name = "tasks"
    tables = (TASKS,)

    @handles(Task.Created)
    def created(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.upsert(
            TASKS,
            {
                **created(e, position),
                "project_id": str(e.project_id),
                "title": e.title,
                "description": e.description,
                "status": e.status,
                "priority": e.priority,
                "assignee_ids": ids(e.assignee_ids),
                "labels": list(e.labels),
                "due_date": e.due_date,
                "start_date": e.start_date,
                "estimate": e.estimate,
                "parent_id": str(e.parent_id) if e.parent_id else None,
                "created_by": str(e.created_by),
                "completed_at": iso_utc(e.timestamp) if e.status_category == "done" else None,
                "deleted": False,
            },
        )

    @handles(Task.Updated)
    def updated(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        self._change(tx, e, position, dict(e.changes))

    @handles(Task.Moved)
    def moved(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        self._change(tx, e, position, {"status": e.to_status, "completed_at": iso_utc(e.completed_at)})

    @handles(Task.Assigned, Task.Unassigned)
    def assignment(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        row = tx.get(TASKS, {"id": str(e.originator_id)})
        if row is None:
            return
        assignees = [a for a in row["assignee_ids"] if a != str(e.user_id)]
        if isinstance(e, Task.Assigned):
            assignees.append(str(e.user_id))
        self._change(tx, e, position, {"assignee_ids": assignees})

    @handles(Task.Deleted)
    def deleted(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        self._change(tx, e, position, {"deleted": True})

    @staticmethod
    def _change(tx: ProjectionTransaction, e: Any, position: int, values: dict[str, Any]) -> None:
        tx.update(TASKS, {"id": str(e.originator_id)}, {**values, **touched(e, position)})
