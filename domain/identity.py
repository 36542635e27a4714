"""The signed-in actor, as established from a verified access token."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class Principal:
    user_id: UUID
    email: str
    roles: tuple[str, ...]
    token_id: str
    session_id: str
    expires_at: int

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def is_auditor(self) -> bool:
        return "auditor" in self.roles
