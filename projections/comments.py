"""Comments read model.

Handles: Comment.Added, Edited, Deleted.
Writes: table ``comments``.
"""

from __future__ import annotations

from typing import Any

from domain.comment import Comment
from projections.base import Projection, handles
from projections.common import BOOKKEEPING, created, touched
from projections.schema import Column, Table, text, uuid
from projections.store import ProjectionTransaction

COMMENTS = Table(
    "comments",
    (
        uuid("id", filterable=True),
        uuid("task_id", filterable=True),
        uuid("project_id", filterable=True),
        uuid("author_id", filterable=True),
        text("body", filterable=True),
        Column("deleted", "bool", public=False),
        *BOOKKEEPING,
    ),
    primary_key=("id",),
    indexes=(("task_id", "created_at"),),
)


class CommentsProjection(Projection):
    name = "comments"
    tables = (COMMENTS,)

    @handles(Comment.Added)
    def added(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.upsert(
            COMMENTS,
            {
                **created(e, position),
                "task_id": str(e.task_id),
                "project_id": str(e.project_id),
                "author_id": str(e.author_id),
                "body": e.body,
                "deleted": False,
            },
        )

    @handles(Comment.Edited)
    def edited(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.update(COMMENTS, {"id": str(e.originator_id)}, {"body": e.body, **touched(e, position)})

    @handles(Comment.Deleted)
    def deleted(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.update(COMMENTS, {"id": str(e.originator_id)}, {"deleted": True, **touched(e, position)})
