"""Project: its members and their roles, and the status workflow its tasks follow.

Authorisation lives here because it is a rule of the project: who may do what is decided by the
member's role, and a non-member must not learn that the project exists (NotFound, not Forbidden).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import TaskFlowAggregate, require_text
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound

PROJECT_ROLES = ("owner", "admin", "member", "viewer")
STATUS_CATEGORIES = ("todo", "in_progress", "done", "cancelled")
DEFAULT_WORKFLOW: tuple[dict[str, str], ...] = (
    {"name": "todo", "category": "todo"},
    {"name": "in_progress", "category": "in_progress"},
    {"name": "in_review", "category": "in_progress"},
    {"name": "done", "category": "done"},
    {"name": "cancelled", "category": "cancelled"},
)
_KEY = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
_STATUS_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class Permission(Enum):
    READ = "read"
    WRITE_TASKS = "write_tasks"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_PROJECT = "manage_project"
    DELETE_PROJECT = "delete_project"


_ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({Permission.READ}),
    "member": frozenset({Permission.READ, Permission.WRITE_TASKS}),
    "admin": frozenset(set(Permission) - {Permission.DELETE_PROJECT}),
    "owner": frozenset(Permission),
}


def check_role(role: str) -> str:
    if role not in PROJECT_ROLES:
        raise InvalidInput.on("role", f"role must be one of {', '.join(PROJECT_ROLES)}")
    return role


def check_workflow(statuses: list[dict[str, str]]) -> list[dict[str, str]]:
    names = [s.get("name", "") for s in statuses]
    if len(statuses) < 2:
        raise InvalidInput.on("statuses", "a workflow needs at least two statuses")
    if len(set(names)) != len(names):
        raise InvalidInput.on("statuses", "status names must be unique")
    for s in statuses:
        if not _STATUS_NAME.match(s.get("name", "")):
            raise InvalidInput.on("statuses", f"invalid status name {s.get('name')!r}")
        if s.get("category") not in STATUS_CATEGORIES:
            raise InvalidInput.on(
                "statuses", f"status category must be one of {', '.join(STATUS_CATEGORIES)}"
            )
    if not any(s["category"] == "done" for s in statuses):
        raise InvalidInput.on("statuses", "a workflow needs a status of category 'done'")
    return [{"name": s["name"], "category": s["category"]} for s in statuses]


class Project(TaskFlowAggregate):
    @event("Created")
    def __init__(
        self,
        name: str,
        description: str,
        key: str | None,
        owner_id: UUID,
        workflow: list[dict[str, str]],
    ) -> None:
        self.name = name
        self.description = description
        self.key = key
        self.owner_id = owner_id
        self.workflow = list(workflow)
        self.members: dict[UUID, str] = {owner_id: "owner"}
        self.archived = False
        self.deleted = False

    @classmethod
    def create(
        cls, owner_id: UUID, name: str, description: str = "", key: str | None = None
    ) -> Project:
        if key is not None and not _KEY.match(key):
            raise InvalidInput.on("key", "key must be 2-10 upper-case letters or digits")
        return cls(
            name=require_text("name", name, max_length=200),
            description=description.strip()[:10_000],
            key=key,
            owner_id=owner_id,
            workflow=[dict(s) for s in DEFAULT_WORKFLOW],
        )

    # --- who may do what -------------------------------------------------------------------
    def role_of(self, user_id: UUID) -> str | None:
        return self.members.get(user_id)

    def is_member(self, user_id: UUID) -> bool:
        return user_id in self.members

    def authorize(self, actor_id: UUID, permission: Permission, *, is_admin: bool = False) -> None:
        """Raise unless the actor may do ``permission`` (system admins act as owners)."""
        if self.deleted:
            raise NotFound("project not found")
        role = "owner" if is_admin else self.members.get(actor_id)
        if role is None:
            raise NotFound("project not found")
        if permission not in _ROLE_PERMISSIONS[role]:
            raise Forbidden(f"a project {role} may not {permission.value.replace('_', ' ')}")

    # --- the workflow ------------------------------------------------------------------------
    @property
    def status_names(self) -> list[str]:
        return [s["name"] for s in self.workflow]

    @property
    def initial_status(self) -> str:
        return self.workflow[0]["name"]

    def category_of(self, status: str) -> str:
        for s in self.workflow:
            if s["name"] == status:
                return s["category"]
        raise InvalidInput.on("status", f"status must be one of {', '.join(self.status_names)}")

    def change_workflow(self, statuses: list[dict[str, str]]) -> None:
        self._require_live()
        checked = check_workflow(statuses)
        if checked != self.workflow:
            self._workflow_changed(statuses=checked)

    @event("WorkflowChanged")
    def _workflow_changed(self, statuses: list[dict[str, str]]) -> None:
        self.workflow = list(statuses)

    # --- details and lifecycle ---------------------------------------------------------------
    def update(self, *, name: str | None = None, description: str | None = None) -> None:
        self._require_live()
        changes: dict[str, Any] = {}
        if name is not None and (cleaned := require_text("name", name, max_length=200)) != self.name:
            changes["name"] = cleaned
        if description is not None and description.strip() != self.description:
            changes["description"] = description.strip()[:10_000]
        if changes:
            self._updated(changes=changes)

    @event("Updated")
    def _updated(self, changes: dict[str, Any]) -> None:
        for attribute, value in changes.items():
            setattr(self, attribute, value)

    def archive(self) -> None:
        self._require_live()
        self._archived()

    @event("Archived")
    def _archived(self) -> None:
        self.archived = True

    def restore(self) -> None:
        self._require_not_deleted()
        if not self.archived:
            raise Conflict("project is not archived")
        self._restored()

    @event("Restored")
    def _restored(self) -> None:
        self.archived = False

    def delete(self) -> None:
        self._require_not_deleted()
        self._deleted()

    @event("Deleted")
    def _deleted(self) -> None:
        self.deleted = True

    # --- members -----------------------------------------------------------------------------
    def add_member(self, actor_id: UUID, user_id: UUID, role: str, *, is_admin: bool = False) -> None:
        self._require_live()
        check_role(role)
        if user_id in self.members:
            raise Conflict("user is already a member of this project")
        self._guard_owner_change(actor_id, role, is_admin)
        self._member_added(user_id=user_id, role=role)

    @event("MemberAdded")
    def _member_added(self, user_id: UUID, role: str) -> None:
        self.members[user_id] = role

    def change_member_role(
        self, actor_id: UUID, user_id: UUID, role: str, *, is_admin: bool = False
    ) -> None:
        self._require_live()
        check_role(role)
        current = self._existing_role(user_id)
        if current == role:
            return
        self._guard_owner_change(actor_id, current, is_admin)
        self._guard_owner_change(actor_id, role, is_admin)
        if current == "owner":
            self._require_another_owner(user_id)
        self._member_role_changed(user_id=user_id, role=role)

    @event("MemberRoleChanged")
    def _member_role_changed(self, user_id: UUID, role: str) -> None:
        self.members[user_id] = role

    def remove_member(self, actor_id: UUID, user_id: UUID, *, is_admin: bool = False) -> None:
        self._require_live()
        current = self._existing_role(user_id)
        if actor_id != user_id:
            self._guard_owner_change(actor_id, current, is_admin)
        if current == "owner":
            self._require_another_owner(user_id)
        self._member_removed(user_id=user_id)

    @event("MemberRemoved")
    def _member_removed(self, user_id: UUID) -> None:
        del self.members[user_id]

    # --- guards ------------------------------------------------------------------------------
    def _existing_role(self, user_id: UUID) -> str:
        role = self.members.get(user_id)
        if role is None:
            raise NotFound("member not found")
        return role

    def _guard_owner_change(self, actor_id: UUID, role: str, is_admin: bool) -> None:
        # Only owners make, unmake or remove owners: a project admin cannot take over a project.
        if role == "owner" and not is_admin and self.members.get(actor_id) != "owner":
            raise Forbidden("only an owner may grant, change or remove the owner role")

    def _require_another_owner(self, user_id: UUID) -> None:
        if not any(r == "owner" for u, r in self.members.items() if u != user_id):
            raise Conflict("a project must keep at least one owner")

    def _require_not_deleted(self) -> None:
        if self.deleted:
            raise NotFound("project not found")

    def _require_live(self) -> None:
        self._require_not_deleted()
        if self.archived:
            raise Conflict("project is archived; restore it first")

    def require_open_for_tasks(self) -> None:
        self._require_live()
