"""Errors a client may be told about.

Each carries a stable ``code`` from the HTTP contract (API.md); the composition root maps codes
to HTTP statuses, so nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class TaskFlowError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str, details: list[FieldProblem] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidInput(TaskFlowError):
    """A value breaks a rule of its own (blank title, unknown priority, ...)."""

    code = "VALIDATION_FAILED"

    @classmethod
    def on(cls, field: str, message: str) -> InvalidInput:
        return cls(message, [FieldProblem(field, message)])


class NotFound(TaskFlowError):
    """Unknown id, or an id the actor may not see (so its existence is not revealed)."""

    code = "NOT_FOUND"


class Forbidden(TaskFlowError):
    """The actor may see the resource but its role does not allow the action."""

    code = "FORBIDDEN"


class Conflict(TaskFlowError):
    """A domain rule refuses the command given the current state."""

    code = "CONFLICT"


class VersionMismatch(TaskFlowError):
    """The client's expected version (If-Match) is not the aggregate's current version."""

    code = "PRECONDITION_FAILED"


class Unauthenticated(TaskFlowError):
    code = "UNAUTHORIZED"


class TokenExpired(Unauthenticated):
    code = "TOKEN_EXPIRED"
