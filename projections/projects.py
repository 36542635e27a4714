"""Projects read model, with members (also the read side's source of who may read a project).

Handles: Project.Created, Updated, WorkflowChanged, Archived, Restored, Deleted, MemberAdded,
MemberRoleChanged, MemberRemoved.
Writes: tables ``projects`` and ``project_members``.
"""

from __future__ import annotations

from typing import Any

from domain.clock import iso_utc
from domain.project import Project
from projections.base import Projection, handles
from projections.common import BOOKKEEPING, created, touched
from projections.schema import Column, Table, text, uuid
from projections.store import ProjectionTransaction

PROJECTS = Table(
    "projects",
    (
        uuid("id", filterable=True),
        text("name", filterable=True, sortable=True),
        text("description", filterable=True),
        text("key", filterable=True, sortable=True),
        uuid("owner_id", filterable=True),
        Column("archived", "bool", filterable=True),
        Column("deleted", "bool", public=False),
        Column("workflow", "json"),
        Column("member_count", "int", filterable=True, sortable=True),
        *BOOKKEEPING,
    ),
    primary_key=("id",),
)

PROJECT_MEMBERS = Table(
    "project_members",
    (
        uuid("project_id", filterable=True),
        uuid("user_id", filterable=True, sortable=True),
        text("role", filterable=True, sortable=True),
        Column("added_at", "instant", filterable=True, sortable=True),
    ),
    primary_key=("project_id", "user_id"),
    indexes=(("user_id",),),
)


class ProjectsProjection(Projection):
    name = "projects"
    tables = (PROJECTS, PROJECT_MEMBERS)

    @handles(Project.Created)
    def created(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.upsert(
            PROJECTS,
            {
                **created(e, position),
                "name": e.name,
                "description": e.description,
                "key": e.key,
                "owner_id": str(e.owner_id),
                "archived": False,
                "deleted": False,
                "workflow": e.workflow,
                "member_count": 1,
            },
        )
        self._set_member(tx, e, e.owner_id, "owner")

    @handles(Project.Updated)
    def updated(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        self._change(tx, e, position, dict(e.changes))

    @handles(Project.WorkflowChanged)
    def workflow_changed(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        self._change(tx, e, position, {"workflow": e.statuses})

    @handles(Project.Archived)
    def archived(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        self._change(tx, e, position, {"archived": True})

    @handles(Project.Restored)
    def restored(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        self._change(tx, e, position, {"archived": False})

    @handles(Project.Deleted)
    def deleted(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        self._change(tx, e, position, {"deleted": True})

    @handles(Project.MemberAdded, Project.MemberRoleChanged)
    def member_set(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        self._set_member(tx, e, e.user_id, e.role)
        self._change(tx, e, position, {})

    @handles(Project.MemberRemoved)
    def member_removed(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.delete(PROJECT_MEMBERS, {"project_id": str(e.originator_id), "user_id": str(e.user_id)})
        self._change(tx, e, position, {})

    @staticmethod
    def _set_member(tx: ProjectionTransaction, e: Any, user_id: Any, role: str) -> None:
        key = {"project_id": str(e.originator_id), "user_id": str(user_id)}
        existing = tx.get(PROJECT_MEMBERS, key)
        added_at = existing["added_at"] if existing else iso_utc(e.timestamp)
        tx.upsert(PROJECT_MEMBERS, {**key, "role": role, "added_at": added_at})

    @staticmethod
    def _change(tx: ProjectionTransaction, e: Any, position: int, values: dict[str, Any]) -> None:
        project_id = str(e.originator_id)
        if isinstance(e, (Project.MemberAdded, Project.MemberRemoved)):
            values["member_count"] = len(tx.find(PROJECT_MEMBERS, {"project_id": project_id}))
        tx.update(PROJECTS, {"id": project_id}, {**values, **touched(e, position)})
