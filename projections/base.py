"""The projection base: a named read model, its tables, and one handler per event class.

Handlers are pure with respect to I/O: they only read and write through the transaction they are
given, so the same code runs on SQLite or PostgreSQL, in-process or behind Kafka.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from eventsourcing.utils import get_topic

from projections.schema import Table
from projections.store import ProjectionTransaction

Handler = Callable[[Any, Any, ProjectionTransaction, int], None]


def handles(*event_classes: type) -> Callable[[Handler], Handler]:
    def mark(method: Handler) -> Handler:
        method._handles = event_classes  # type: ignore[attr-defined]
        return method

    return mark


class Projection:
    name: ClassVar[str]
    # Bump when tables or handlers change meaning: the runner then rebuilds from position 0.
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[Table, ...]]
    # Whether the read API looks this projection's rows up one by one (worth a row cache); a
    # read model only ever read by range queries (analytics) would pay the write-through for nothing.
    row_cache: ClassVar[bool] = True
    _handlers: ClassVar[dict[type, Handler]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass keeps its parent's handlers and may add or override some.
        cls._handlers = dict(getattr(cls, "_handlers", {}))
        for attribute in vars(cls).values():
            for event_class in getattr(attribute, "_handles", ()):
                cls._handlers[event_class] = attribute

    @property
    def topics(self) -> list[str]:
        return [get_topic(event_class) for event_class in self._handlers]

    def process(self, event: Any, tx: ProjectionTransaction, position: int) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(self, event, tx, position)
