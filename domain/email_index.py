"""EmailIndex: one aggregate per e-mail address, its id derived from the address.

Registering creates the index entry and the user in one atomic save; a second registration with
the same address tries to create version 1 of the same index id and the event store refuses it,
so uniqueness holds even between concurrent writers.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from domain.base import TaskFlowAggregate


class EmailIndex(TaskFlowAggregate):
    @event("Claimed")
    def __init__(self, email: str, user_id: UUID) -> None:
        self.email = email
        self.user_id = user_id

    @staticmethod
    def create_id(email: str) -> UUID:
        return EmailIndex.id_for(email)

    @staticmethod
    def id_for(email: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/taskflow/email/{email}")
