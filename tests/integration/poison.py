"""A projection whose handlers raise on chosen events (a bug in a handler, as far as the runner can
tell), and how to pick such an event in a generated history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification


class PoisonedBy(Exception):
    pass


class RaisesOn:
    """Wraps a projection: raises on every event ``poisoned(event, position)`` is true for, and
    applies the others as the projection does. Setting ``fixed`` is "deploying the fix"."""

    def __init__(self, inner: Any, poisoned: Callable[[Any, int], bool],
                 error: Callable[[int], Exception] = lambda p: PoisonedBy(f"handler bug on the event at position {p}")):
        self.inner, self.poisoned, self.error = inner, poisoned, error
        self.name, self.version, self.tables, self.topics = inner.name, inner.version, inner.tables, inner.topics
        self.fixed = False

    def process(self, event: Any, tx: Any, position: int) -> None:
        if not self.fixed and self.poisoned(event, position):
            raise self.error(position)
        self.inner.process(event, tx, position)


def at_positions(*positions: int) -> Callable[[Any, int], bool]:
    chosen = set(positions)
    return lambda _event, position: position in chosen


@dataclass
class Poison:
    position: int  # the event whose handler raises
    aggregate_id: str
    later: list[int]  # the aggregate's later events the projection handles (parked behind it)


def pick_poison(recorder: Any, topics: list[str], *, later_events: int = 2) -> Poison:
    """An event of an aggregate that has at least ``later_events`` more events handled after it
    (not its first: a row to change exists), about the middle of the history."""
    handled: list[Notification] = recorder.select_notifications(start=1, limit=100_000, topics=topics)
    by_aggregate: dict[str, list[int]] = {}
    for n in handled:
        by_aggregate.setdefault(str(n.originator_id), []).append(n.id)
    middle = handled[len(handled) // 2].id
    candidates = [(a, ps) for a, ps in by_aggregate.items() if len(ps) >= later_events + 2]
    aggregate_id, positions = min(candidates, key=lambda c: abs(c[1][1] - middle))
    return Poison(positions[1], aggregate_id, positions[2:])
