"""Audit index: one small row per stored event, so the audit log can be filtered at scale.

Handles: every event of every TaskFlow aggregate.
Writes: table ``audit_index`` (position, aggregate id and type, event type, actor, occurred at),
keyed by the event's position. The events themselves are read from the event store by position
(the source of truth, with their hash-chain links); this table only says which positions match.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from domain import comment, email_index, project, task, user  # noqa: F401  (defines the event classes)
from domain.base import TaskFlowAggregate
from domain.clock import iso_utc
from projections.base import Projection, handles
from projections.schema import Column, Table, instant, text, uuid
from projections.store import ProjectionTransaction

AUDIT_INDEX = Table(
    "audit_index",
    (
        Column("position", "int"),
        uuid("aggregate_id", filterable=True),
        text("aggregate_type", filterable=True),
        text("type", filterable=True),
        uuid("actor_id", filterable=True),
        # Filtered through the audit route's ``from``/``to``, not ``filter[...]``.
        instant("occurred_at"),
    ),
    primary_key=("position",),
    indexes=(("aggregate_id", "position"), ("actor_id", "position"), ("type", "position"), ("occurred_at",)),
)


def _event_classes(base: type) -> Iterator[type]:
    for subclass in base.__subclasses__():
        # An event class declared explicitly and named in ``@event(...)`` is subclassed by
        # eventsourcing under the same name and topic; only that subclass is ever stored.
        if not any(_same_name(s, subclass) for s in subclass.__subclasses__()):
            yield subclass
        yield from _event_classes(subclass)


def _same_name(a: type, b: type) -> bool:
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def event_type(event: Any) -> str:
    """How the audit and history routes name an event's type (``Task.Moved``)."""
    return type(event).__qualname__


class AuditIndexProjection(Projection):
    name = "audit"
    tables = (AUDIT_INDEX,)

    @handles(*dict.fromkeys(_event_classes(TaskFlowAggregate.Event)))
    def any_event(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        tx.upsert(
            AUDIT_INDEX,
            {
                "position": position,
                "aggregate_id": str(e.originator_id),
                "aggregate_type": event_type(e).split(".")[0],
                "type": event_type(e),
                "actor_id": (getattr(e, "metadata", None) or {}).get("actorId"),
                "occurred_at": iso_utc(e.timestamp),
            },
        )
