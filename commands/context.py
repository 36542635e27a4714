"""Who sends a command and why: becomes the metadata of every event the command writes."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from domain.base import EventMetadata


@dataclass(frozen=True)
class CommandContext:
    actor_id: UUID | None
    request_id: str
    correlation_id: str
    causation_id: str
    actor_roles: tuple[str, ...] = ()
    # If-Match: the version the client last saw of the command's target aggregate.
    expected_version: int | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.actor_roles

    def metadata(self) -> EventMetadata:
        return {
            "actorId": str(self.actor_id) if self.actor_id else None,
            "requestId": self.request_id,
            "correlationId": self.correlation_id,
            "causationId": self.causation_id,
        }

    @classmethod
    def system(cls, reason: str) -> CommandContext:
        """For operator commands run from the CLI (no HTTP request, no signed-in actor)."""
        return cls(actor_id=None, request_id=reason, correlation_id=reason, causation_id=reason)
