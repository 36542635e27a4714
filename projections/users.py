"""Users read model.

Handles: User.Registered, ProfileUpdated, PasswordChanged, RoleGranted, RoleRevoked, Deactivated.
Writes: table ``users`` (never the password hash).
"""

from __future__ import annotations

from typing import Any

from domain.user import User
from projections.base import Projection, handles
from projections.common import BOOKKEEPING, created, touched
from projections.schema import Column, Table, text, uuid
from projections.store import ProjectionTransaction

USERS = Table(
    "users",
    (
        uuid("id", filterable=True),
        text("email", filterable=True, sortable=True),
        text("name", filterable=True, sortable=True),
        Column("roles", "json", filterable=True),
        Column("active", "bool", filterable=True),
        *BOOKKEEPING,
    ),
    primary_key=("id",),
    indexes=(("email",),),
)


class UsersProjection(Projection):
    name = "users"
    tables = (USERS,)

    @handles(User.Registered)
    def registered(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.upsert(
            USERS,
            {**created(e, position), "email": e.email, "name": e.name, "roles": list(e.roles), "active": True},
        )

    @handles(User.ProfileUpdated)
    def profile_updated(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.update(USERS, {"id": str(e.originator_id)}, {"name": e.name, **touched(e, position)})

    @handles(User.PasswordChanged)
    def password_changed(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.update(USERS, {"id": str(e.originator_id)}, touched(e, position))

    @handles(User.RoleGranted, User.RoleRevoked)
    def roles_changed(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        row = tx.get(USERS, {"id": str(e.originator_id)})
        if row is None:
            return
        roles = [r for r in row["roles"] if r != e.role]
        if isinstance(e, User.RoleGranted):
            roles.append(e.role)
        tx.update(USERS, {"id": row["id"]}, {"roles": roles, **touched(e, position)})

    @handles(User.Deactivated)
    def deactivated(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.update(USERS, {"id": str(e.originator_id)}, {"active": False, **touched(e, position)})
