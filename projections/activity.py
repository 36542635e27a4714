"""Per-task activity feed: what happened to a task and its comments, newest last.

Handles: Task.Created, Updated, Moved, Assigned, Unassigned, Deleted; Comment.Added, Edited, Deleted.
Writes: table ``task_activity``, one row per event, keyed by its event-store position (so applying
the same event twice cannot add a second row).
"""

from __future__ import annotations

from typing import Any

from domain.clock import iso_utc
from domain.comment import Comment
from domain.task import Task
from projections.base import Projection, handles
from projections.schema import Column, Table, instant, text, uuid
from projections.store import ProjectionTransaction

TASK_ACTIVITY = Table(
    "task_activity",
    (
        Column("position", "int", sortable=True, filterable=True),
        uuid("task_id", filterable=True),
        uuid("comment_id", filterable=True),
        text("type", filterable=True),
        uuid("actor_id", filterable=True),
        instant("occurred_at", filterable=True, sortable=True),
        Column("data", "json"),
    ),
    primary_key=("position",),
    indexes=(("task_id", "position"), ("comment_id",)),
)

_TASK_TYPES = {
    Task.Created: "task.created",
    Task.Updated: "task.updated",
    Task.Moved: "task.moved",
    Task.Assigned: "task.assigned",
    Task.Unassigned: "task.unassigned",
    Task.Deleted: "task.deleted",
}
_COMMENT_TYPES = {
    Comment.Added: "comment.added",
    Comment.Edited: "comment.edited",
    Comment.Deleted: "comment.deleted",
}


def _describe(e: Any) -> dict[str, Any]:
    if isinstance(e, Task.Created):
        return {"title": e.title, "status": e.status}
    if isinstance(e, Task.Updated):
        return {"changes": dict(e.changes)}
    if isinstance(e, Task.Moved):
        return {"from": e.from_status, "to": e.to_status}
    if isinstance(e, (Task.Assigned, Task.Unassigned)):
        return {"userId": str(e.user_id)}
    if isinstance(e, (Comment.Added, Comment.Edited)):
        return {"commentId": str(e.originator_id), "body": e.body}
    if isinstance(e, Comment.Deleted):
        return {"commentId": str(e.originator_id)}
    return {}


class ActivityProjection(Projection):
    name = "activity"
    tables = (TASK_ACTIVITY,)

    @handles(*_TASK_TYPES)
    def task_event(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        self._record(tx, position, str(e.originator_id), None, _TASK_TYPES[type(e)], e)

    @handles(*_COMMENT_TYPES)
    def comment_event(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        task_id = getattr(e, "task_id", None)
        if task_id is None:
            # Edits and deletions do not repeat the task id: take it from the comment's first row.
            first = tx.find(TASK_ACTIVITY, {"comment_id": str(e.originator_id), "type": "comment.added"})
            task_id = first[0]["task_id"] if first else None
        if task_id is not None:
            comment_id = str(e.originator_id)
            self._record(tx, position, str(task_id), comment_id, _COMMENT_TYPES[type(e)], e)

    @staticmethod
    def _record(
        tx: ProjectionTransaction, position: int, task_id: str, comment_id: str | None, kind: str, e: Any
    ) -> None:
        tx.upsert(
            TASK_ACTIVITY,
            {
                "position": position,
                "task_id": task_id,
                "comment_id": comment_id,
                "type": kind,
                "actor_id": e.metadata.get("actorId"),
                "occurred_at": iso_utc(e.timestamp),
                "data": _describe(e),
            },
        )
