"""What projections and the read API need from a read-model store (implemented in infra/).

A projection's handlers only see ``ProjectionTransaction``: the runner opens one per batch, and the
rows written and the projection's new position are committed together, or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from projections.schema import Table

Row = dict[str, Any]
Operator = Literal["eq", "ne", "gt", "lt", "gte", "lte", "in", "like"]


class ProjectionTransaction(Protocol):
    position: int  # what the projection had applied when this transaction began

    def upsert(self, table: Table, row: Mapping[str, Any]) -> None: ...

    def update(self, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> None: ...

    def delete(self, table: Table, key: Mapping[str, Any]) -> None: ...

    def get(self, table: Table, key: Mapping[str, Any]) -> Row | None: ...

    def find(self, table: Table, where: Mapping[str, Any]) -> list[Row]: ...

    def advance(self, position: int) -> None: ...


@dataclass(frozen=True)
class PartitionPosition:
    """How far a projection has read one partition of a partitioned event feed (a Kafka topic)."""

    offset: int  # the next offset to read
    position: int  # every event of this partition at or below this event-store position is applied


class PartitionedTransaction(ProjectionTransaction, Protocol):
    """A projection transaction that also records, in the same commit, where the projection
    stands in each partition of a feed: a crash then never applies an event twice nor skips one."""

    def partitions(self, feed: str) -> dict[int, PartitionPosition]: ...

    def track_partitions(self, feed: str, positions: Mapping[int, PartitionPosition]) -> None: ...


@dataclass(frozen=True)
class Filter:
    column: str
    op: Operator
    value: Any  # already typed for the column; a list for ``in``


@dataclass(frozen=True)
class Sort:
    column: str
    descending: bool = False


@dataclass(frozen=True)
class ListQuery:
    filters: Sequence[Filter] = ()
    sort: Sequence[Sort] = ()
    page: int = 1
    per_page: int = 20
    # Cursor mode: the sort values of the last row already seen (keyset pagination).
    after: Sequence[Any] | None = None
    cursor_mode: bool = False


@dataclass
class ListResult:
    rows: list[Row]
    total: int | None = None
    # In cursor mode: the sort values of the last row returned, when more rows follow.
    last_sort_values: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ReadModelReader(Protocol):
    """What the read API may do: read rows and the positions projections have applied."""

    def get(self, table: Table, key: Mapping[str, Any]) -> Row | None: ...

    def find(self, table: Table, where: Mapping[str, Any]) -> list[Row]: ...

    def query(self, table: Table, query: ListQuery) -> ListResult: ...

    def position(self, projection: str) -> int: ...

    def ping(self) -> None: ...


class ReadModelStore(ReadModelReader, Protocol):
    """What a projection runner needs on top: schema set-up and tracked write transactions."""

    def ensure_tables(self, projection: str, version: int, tables: Sequence[Table]) -> None: ...

    def transaction(self, projection: str) -> AbstractContextManager[ProjectionTransaction]: ...

    def close(self) -> None: ...


class PartitionedReadModelStore(ReadModelStore, Protocol):
    """A store whose transactions track partitions too (what a Kafka-fed projection needs)."""

    def transaction(self, projection: str) -> AbstractContextManager[PartitionedTransaction]: ...
