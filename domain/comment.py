"""Comment: text on a task, edited or deleted only by its author."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import event

from domain.base import TaskFlowAggregate, require_text
from domain.errors import Forbidden, NotFound

MAX_BODY = 10_000


class Comment(TaskFlowAggregate):
    @event("Added")
    def __init__(self, task_id: UUID, project_id: UUID, author_id: UUID, body: str) -> None:
        self.task_id = task_id
        self.project_id = project_id
        self.author_id = author_id
        self.body = body
        self.deleted = False

    @classmethod
    def add(cls, task_id: UUID, project_id: UUID, author_id: UUID, body: str) -> Comment:
        return cls(
            task_id=task_id,
            project_id=project_id,
            author_id=author_id,
            body=require_text("body", body, max_length=MAX_BODY),
        )

    def edit(self, actor_id: UUID, body: str) -> None:
        self._require_author(actor_id)
        cleaned = require_text("body", body, max_length=MAX_BODY)
        if cleaned != self.body:
            self._edited(body=cleaned)

    @event("Edited")
    def _edited(self, body: str) -> None:
        self.body = body

    def delete(self, actor_id: UUID) -> None:
        self._require_author(actor_id)
        self._deleted()

    @event("Deleted")
    def _deleted(self) -> None:
        self.deleted = True

    def _require_author(self, actor_id: UUID) -> None:
        if self.deleted:
            raise NotFound("comment not found")
        if actor_id != self.author_id:
            raise Forbidden("only the author may change a comment")
