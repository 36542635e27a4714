"""Helpers shared by the projection modules."""

from __future__ import annotations

from typing import Any

from domain.clock import iso_utc
from projections.schema import Column

# Columns every entity table carries: the version the client sends back in If-Match, and the
# event-store position of the last event applied to the row.
BOOKKEEPING = (
    Column("created_at", "instant", filterable=True, sortable=True),
    Column("updated_at", "instant", filterable=True, sortable=True),
    Column("version", "int"),
    Column("position", "int", public=False),
)


def touched(event: Any, position: int) -> dict[str, Any]:
    """The bookkeeping values an event sets on the row of its aggregate."""
    return {
        "version": event.originator_version,
        "position": position,
        "updated_at": iso_utc(event.timestamp),
    }


def created(event: Any, position: int) -> dict[str, Any]:
    return {"id": str(event.originator_id), "created_at": iso_utc(event.timestamp), **touched(event, position)}


def ids(values: Any) -> list[str]:
    return [str(v) for v in values]
