"""What an operator sees of the projections (implemented in infra/, shown by the read API and the
CLI): where each stands against the event log, and the events it could not apply.

A poison event (one a handler raises on) does not stop its projection: it is recorded as a dead
letter and the projection goes on. Later events of the same aggregate are parked behind it (so an
aggregate's events are never applied out of order) until an operator retries or skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

DeadLetterStatus = Literal["open", "parked", "retried", "skipped"]
DEAD_LETTER_STATUSES: tuple[DeadLetterStatus, ...] = ("open", "parked", "retried", "skipped")
# Still waiting for an operator: the projection has not applied these events.
UNRESOLVED: tuple[DeadLetterStatus, ...] = ("open", "parked")


@dataclass(frozen=True)
class DeadLetter:
    projection: str
    position: int
    aggregate_id: str
    event_type: str  # the stored event's topic (module:Qualname)
    # open: its handler raised; parked: waits behind ``blocked_by`` (an open dead letter of the
    # same aggregate); retried: applied later by an operator; skipped: never applied, kept for the record.
    status: DeadLetterStatus
    error: str | None
    attempts: int  # how many times its handler raised (0 for an event only parked)
    first_failed_at: str  # when it was first dead-lettered or parked (ISO-8601 Z)
    last_failed_at: str
    blocked_by: int | None = None
    resolved_at: str | None = None


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    store: str  # sqlite | postgres | elasticsearch
    cached: bool  # rows also served from the Redis row cache
    feed: str  # log (follows the event log) | kafka (a consumer group)
    applied_position: int
    head_position: int
    # caught-up | lagging | degraded (open dead letters), or a state an operation recorded
    state: str
    dead_letters: int  # open dead letters
    parked_events: int  # events waiting behind them
    # The latest rebuild (a row of ``projection_rebuilds``), if any: generation, state, position,
    # head, events_per_second, started_at, updated_at, finished_at, error.
    rebuild: dict[str, Any] | None = None

    @property
    def lag(self) -> int:
        return max(0, self.head_position - self.applied_position)


@dataclass(frozen=True)
class RelayStatus:
    """The Kafka relay: how far it has published the event log."""

    name: str
    position: int
    head_position: int

    @property
    def lag(self) -> int:
        return max(0, self.head_position - self.position)
