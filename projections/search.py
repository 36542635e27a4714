"""Search read model: one document per task, project and comment, for full-text search with
filters and facets.

Handles: Task.Created, Updated, Moved, Assigned, Unassigned, Deleted; Project.Created, Updated,
Archived, Restored, Deleted; Comment.Added, Edited, Deleted.
Writes: search documents through ``SearchTransaction`` (SQLite FTS5, PostgreSQL full-text search
or Elasticsearch, in infra/).

Handlers only describe documents and changes; the store reads the stored document where a change
needs it, so the same handlers feed every store. Every write carries the aggregate's version, and
a store keeps a document's newest version only: applying an event again changes nothing, which
makes at-least-once delivery (Kafka, a crash before the position is saved) exactly-once in effect.
Deleted documents become tombstones (kept with their version, so an old event cannot bring them
back) and never appear in results; deleting a task or a project also hides its comments and tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from domain.clock import iso_utc
from domain.comment import Comment
from domain.project import Project
from domain.task import PRIORITIES, Task
from projections.base import Projection, handles
from projections.schema import Column, Table, text, uuid

DocumentType = Literal["task", "project", "comment"]
DOCUMENT_TYPES: tuple[DocumentType, ...] = ("task", "project", "comment")

# The text every store searches, and how much a match in each field weighs.
SEARCHED_FIELDS: Mapping[str, float] = {
    "title": 3.0, "name": 3.0, "key": 2.0, "labels": 2.0, "description": 1.0, "body": 1.0,
}
# The text fields hits carry highlights for.
HIGHLIGHTED_FIELDS = ("title", "name", "description", "body")
# meta.facets name -> the document field counted.
FACETS: Mapping[str, str] = {"status": "status", "priority": "priority", "assignee": "assigneeIds", "label": "labels"}
# Fields ``hide_where`` may select on.
PARENT_FIELDS = ("projectId", "taskId")

# The fields a search may filter on (``filter[<wire name>]=v`` or ``filter[<wire name>][in]=a,b``),
# described like a table so the read API checks them as it checks list filters.
SEARCH_FILTERS = Table(
    "search",
    (
        uuid("id"),
        uuid("project_id", filterable=True),
        text("status", filterable=True),
        text("priority", filterable=True, ranked=PRIORITIES),
        Column("assignee_ids", "json", filterable=True, items="uuid"),
        Column("labels", "json", filterable=True),
    ),
    primary_key=("id",),
)
# Fields holding a list of values: a filter or facet on them counts each value.
LIST_FIELDS = ("assigneeIds", "labels")


@dataclass(frozen=True)
class SearchDocument:
    type: DocumentType
    id: str
    version: int  # the aggregate's version after the event that wrote this document
    fields: Mapping[str, Any]  # wire names (camelCase), as clients see them in ``document``

    @property
    def project_id(self) -> str | None:
        return self.fields.get("projectId")


@dataclass(frozen=True)
class DocumentChange:
    """A change to a stored document: values to set, and values to add to or remove from lists."""

    set: Mapping[str, Any] = field(default_factory=dict)
    add: Mapping[str, str] = field(default_factory=dict)
    remove: Mapping[str, str] = field(default_factory=dict)

    def applied_to(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        merged = {**fields, **self.set}
        for name, value in self.add.items():
            values = list(merged.get(name) or [])
            merged[name] = values if value in values else [*values, value]
        for name, value in self.remove.items():
            merged[name] = [v for v in merged.get(name) or [] if v != value]
        return merged


class SearchTransaction(Protocol):
    """A search projection's batch: the documents written and its new position are kept together,
    or a crash in between makes the batch be applied again (which versions make harmless)."""

    position: int

    def put(self, document: SearchDocument) -> None:
        """Store the whole document, unless the stored one has this version or a later one."""

    def change(self, type: DocumentType, id: str, version: int, change: DocumentChange) -> None:
        """Apply ``change`` to the stored document and store it as ``version``; nothing happens
        if no document is stored, or the stored one has this version or a later one."""

    def remove(self, type: DocumentType, id: str, version: int) -> None:
        """Replace the document by a tombstone at ``version`` (same rule as ``put``)."""

    def hide_where(self, field: str, value: str) -> None:
        """Hide every document whose ``field`` (one of PARENT_FIELDS) is ``value``, keeping its
        version: the tasks and comments of a deleted project, the comments of a deleted task."""

    def advance(self, position: int) -> None: ...


@dataclass(frozen=True)
class SearchFilter:
    field: str  # wire name: projectId, status, priority, assigneeIds, labels
    values: tuple[str, ...]  # any of them (for a list field: the list holds any of them)


@dataclass(frozen=True)
class SearchQuery:
    text: str
    types: tuple[DocumentType, ...] = DOCUMENT_TYPES
    filters: tuple[SearchFilter, ...] = ()
    # The projects whose documents the caller may see; None means every project (system admins).
    project_ids: Sequence[str] | None = None
    page: int = 1
    per_page: int = 20


@dataclass
class SearchHit:
    type: DocumentType
    id: str
    score: float
    highlights: dict[str, list[str]]
    document: dict[str, Any]


@dataclass
class SearchResult:
    hits: list[SearchHit]
    total: int
    # FACETS name -> value -> how many matching documents have it.
    facets: dict[str, dict[str, int]]


class SearchStore(Protocol):
    """A search store: what the projection runner needs (the same shape as ReadModelStore), and
    the search itself."""

    def search(self, query: SearchQuery) -> SearchResult: ...

    def position(self, projection: str) -> int: ...

    def ensure_tables(self, projection: str, version: int, tables: Sequence[Table]) -> None: ...

    def transaction(self, projection: str) -> AbstractContextManager[SearchTransaction]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def _times(e: Any) -> dict[str, Any]:
    return {"updatedAt": iso_utc(e.timestamp)}


class SearchProjection(Projection):
    name = "search"
    tables = ()

    # --- tasks -------------------------------------------------------------------------------

    @handles(Task.Created)
    def task_created(self, e: Any, tx: SearchTransaction, position: int) -> None:
        created = iso_utc(e.timestamp)
        tx.put(SearchDocument("task", str(e.originator_id), e.originator_version, {
            "id": str(e.originator_id),
            "projectId": str(e.project_id),
            "title": e.title,
            "description": e.description,
            "status": e.status,
            "priority": e.priority,
            "assigneeIds": [str(a) for a in e.assignee_ids],
            "labels": list(e.labels),
            "dueDate": e.due_date,
            "createdBy": str(e.created_by),
            "createdAt": created,
            "updatedAt": created,
        }))

    _TASK_FIELDS: ClassVar[Mapping[str, str]] = {
        "title": "title", "description": "description", "priority": "priority", "labels": "labels",
        "due_date": "dueDate",
    }

    @handles(Task.Updated)
    def task_updated(self, e: Any, tx: SearchTransaction, position: int) -> None:
        changed = {self._TASK_FIELDS[k]: v for k, v in e.changes.items() if k in self._TASK_FIELDS}
        self._change_task(tx, e, DocumentChange(set={**changed, **_times(e)}))

    @handles(Task.Moved)
    def task_moved(self, e: Any, tx: SearchTransaction, position: int) -> None:
        self._change_task(tx, e, DocumentChange(set={"status": e.to_status, **_times(e)}))

    @handles(Task.Assigned)
    def task_assigned(self, e: Any, tx: SearchTransaction, position: int) -> None:
        self._change_task(tx, e, DocumentChange(set=_times(e), add={"assigneeIds": str(e.user_id)}))

    @handles(Task.Unassigned)
    def task_unassigned(self, e: Any, tx: SearchTransaction, position: int) -> None:
        self._change_task(tx, e, DocumentChange(set=_times(e), remove={"assigneeIds": str(e.user_id)}))

    @handles(Task.Deleted)
    def task_deleted(self, e: Any, tx: SearchTransaction, position: int) -> None:
        tx.remove("task", str(e.originator_id), e.originator_version)
        tx.hide_where("taskId", str(e.originator_id))

    @staticmethod
    def _change_task(tx: SearchTransaction, e: Any, change: DocumentChange) -> None:
        tx.change("task", str(e.originator_id), e.originator_version, change)

    # --- projects ----------------------------------------------------------------------------

    @handles(Project.Created)
    def project_created(self, e: Any, tx: SearchTransaction, position: int) -> None:
        created = iso_utc(e.timestamp)
        project_id = str(e.originator_id)
        tx.put(SearchDocument("project", project_id, e.originator_version, {
            "id": project_id,
            "projectId": project_id,
            "name": e.name,
            "description": e.description,
            "key": e.key,
            "ownerId": str(e.owner_id),
            "archived": False,
            "createdAt": created,
            "updatedAt": created,
        }))

    @handles(Project.Updated)
    def project_updated(self, e: Any, tx: SearchTransaction, position: int) -> None:
        changed = {k: v for k, v in e.changes.items() if k in ("name", "description")}
        self._change_project(tx, e, {**changed, **_times(e)})

    @handles(Project.Archived)
    def project_archived(self, e: Any, tx: SearchTransaction, position: int) -> None:
        self._change_project(tx, e, {"archived": True, **_times(e)})

    @handles(Project.Restored)
    def project_restored(self, e: Any, tx: SearchTransaction, position: int) -> None:
        self._change_project(tx, e, {"archived": False, **_times(e)})

    @handles(Project.Deleted)
    def project_deleted(self, e: Any, tx: SearchTransaction, position: int) -> None:
        tx.remove("project", str(e.originator_id), e.originator_version)
        tx.hide_where("projectId", str(e.originator_id))

    @staticmethod
    def _change_project(tx: SearchTransaction, e: Any, values: dict[str, Any]) -> None:
        tx.change("project", str(e.originator_id), e.originator_version, DocumentChange(set=values))

    # --- comments ----------------------------------------------------------------------------

    @handles(Comment.Added)
    def comment_added(self, e: Any, tx: SearchTransaction, position: int) -> None:
        created = iso_utc(e.timestamp)
        tx.put(SearchDocument("comment", str(e.originator_id), e.originator_version, {
            "id": str(e.originator_id),
            "projectId": str(e.project_id),
            "taskId": str(e.task_id),
            "authorId": str(e.author_id),
            "body": e.body,
            "createdAt": created,
            "updatedAt": created,
        }))

    @handles(Comment.Edited)
    def comment_edited(self, e: Any, tx: SearchTransaction, position: int) -> None:
        tx.change("comment", str(e.originator_id), e.originator_version,
                  DocumentChange(set={"body": e.body, **_times(e)}))

    @handles(Comment.Deleted)
    def comment_deleted(self, e: Any, tx: SearchTransaction, position: int) -> None:
        tx.remove("comment", str(e.originator_id), e.originator_version)
