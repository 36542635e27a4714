"""User: a person who signs in. E-mail uniqueness is kept by ``EmailIndex`` (domain/email_index.py)."""

from __future__ import annotations

import re

from eventsourcing.domain import event

from domain.base import TaskFlowAggregate, require_text
from domain.errors import Conflict, InvalidInput

SYSTEM_ROLES = ("user", "admin", "auditor")
# Deliberately loose: the API validates the full syntax; this keeps obviously broken values out of
# the event store whatever the caller.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    cleaned = email.strip().lower()
    if not _EMAIL.match(cleaned) or len(cleaned) > 254:
        raise InvalidInput.on("email", "email is not a valid address")
    return cleaned


class User(TaskFlowAggregate):
    @event("Registered")
    def __init__(self, email: str, name: str, password_hash: str, roles: list[str]) -> None:
        self.email = email
        self.name = name
        self.password_hash = password_hash
        self.roles = list(roles)
        self.active = True

    @classmethod
    def register(cls, email: str, name: str, password_hash: str) -> User:
        return cls(
            email=normalise_email(email),
            name=require_text("name", name, max_length=100),
            password_hash=password_hash,
            roles=["user"],
        )

    def update_profile(self, name: str) -> None:
        self._require_active()
        cleaned = require_text("name", name, max_length=100)
        if cleaned != self.name:
            self._profile_updated(name=cleaned)

    @event("ProfileUpdated")
    def _profile_updated(self, name: str) -> None:
        self.name = name

    def change_password(self, password_hash: str) -> None:
        self._require_active()
        self._password_changed(password_hash=password_hash)

    @event("PasswordChanged")
    def _password_changed(self, password_hash: str) -> None:
        self.password_hash = password_hash

    def grant_role(self, role: str) -> None:
        if role not in SYSTEM_ROLES:
            raise InvalidInput.on("role", f"role must be one of {', '.join(SYSTEM_ROLES)}")
        if role not in self.roles:
            self._role_granted(role=role)

    @event("RoleGranted")
    def _role_granted(self, role: str) -> None:
        self.roles.append(role)

    def revoke_role(self, role: str) -> None:
        if role == "user":
            raise Conflict("the 'user' role cannot be revoked")
        if role in self.roles:
            self._role_revoked(role=role)

    @event("RoleRevoked")
    def _role_revoked(self, role: str) -> None:
        self.roles.remove(role)

    def deactivate(self) -> None:
        self._require_active()
        self._deactivated()

    @event("Deactivated")
    def _deactivated(self) -> None:
        self.active = False

    def _require_active(self) -> None:
        if not self.active:
            raise Conflict("user is deactivated")
