"""Command models: what a client may ask the write side to do, validated at the edge.

Field names are camelCase on the wire (aliases) and snake_case in Python. On PATCH models a field
left out means "unchanged" and an explicit null means "clear it" (``model_fields_set``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints
from pydantic.alias_generators import to_camel

Priority = Literal["low", "medium", "high", "urgent"]
ProjectRole = Literal["owner", "admin", "member", "viewer"]
StatusCategory = Literal["todo", "in_progress", "done", "cancelled"]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class Command(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def given(self) -> dict[str, object]:
        """The fields the client actually sent (for partial updates)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class RegisterUser(Command):
    email: EmailStr
    password: Annotated[str, StringConstraints(min_length=8, max_length=128)]
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class UpdateUser(Command):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = None
    password: Annotated[str, StringConstraints(min_length=8, max_length=128)] | None = None


class CreateProject(Command):
    name: Title
    description: Annotated[str, StringConstraints(max_length=10_000)] = ""
    key: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{1,9}$")] | None = None
    organization_id: UUID | None = None


class UpdateProject(Command):
    name: Title | None = None
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None


class WorkflowStatus(Command):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    category: StatusCategory


class ChangeWorkflow(Command):
    statuses: list[WorkflowStatus] = Field(min_length=2, max_length=30)


class AddMember(Command):
    user_id: UUID
    role: ProjectRole = "member"


class ChangeMemberRole(Command):
    role: ProjectRole


class CreateTask(Command):
    title: Title
    description: Annotated[str, StringConstraints(max_length=20_000)] = ""
    priority: Priority = "medium"
    status: str | None = None
    assignee_ids: list[UUID] = Field(default_factory=list, max_length=50)
    due_date: date | None = None
    start_date: date | None = None
    estimate: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    labels: list[Label] = Field(default_factory=list, max_length=20)
    parent_id: UUID | None = None


class UpdateTask(Command):
    title: Title | None = None
    description: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    priority: Priority | None = None
    status: str | None = None
    assignee_ids: list[UUID] | None = Field(default=None, max_length=50)
    due_date: date | None = None
    start_date: date | None = None
    estimate: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    labels: list[Label] | None = Field(default=None, max_length=20)


class AddComment(Command):
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


class EditComment(AddComment):
    pass
