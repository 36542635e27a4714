"""The base aggregate: every TaskFlow event carries who, why and when.

``timestamp`` (when) comes from eventsourcing. ``metadata`` (who and why) is a keyword-only field so
that the event classes generated from ``@event`` methods keep their own fields first; the
application service stamps it on every new event before saving (see ``stamped``), so aggregate
methods stay free of bookkeeping arguments.
"""

from __future__ import annotations

from dataclasses import field, replace
from typing import Any, TypedDict

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput


class EventMetadata(TypedDict):
    actorId: str | None
    requestId: str | None
    correlationId: str | None
    causationId: str | None


class TaskFlowAggregate(Aggregate):
    class Event(Aggregate.Event):
        metadata: dict[str, Any] = field(default_factory=dict, kw_only=True)

    class Created(Event, Aggregate.Created):
        pass


def stamped(events: list[Any], metadata: EventMetadata) -> list[Any]:
    """Copies of ``events`` carrying ``metadata``; the metadata never changes aggregate state."""
    return [replace(e, metadata=dict(metadata)) for e in events]


def require_text(field_name: str, value: str, *, max_length: int) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput.on(field_name, f"{field_name} must not be blank")
    if len(cleaned) > max_length:
        raise InvalidInput.on(field_name, f"{field_name} must be at most {max_length} characters")
    return cleaned
