"""A projection's copy in a SQL store (SQLite or PostgreSQL), built beside the live tables and
swapped in (see infra/rebuild.py for the whole rebuild).

The copy lives in tables named ``<table>__r<generation>`` with its own tracking row
``<projection>__r<generation>``; the projection's handlers write it through transactions whose
``names`` send each declared table to its copy. The swap is one transaction that first holds the
live projection's tracking row (so the live projector waits), applies the last events to the copy,
drops the live tables, renames the copy's to the live names (index names too, so a later
``ensure_tables`` or rebuild finds them), and moves the live position to the copy's. Both
databases have transactional DDL: a crash anywhere before the commit leaves the live tables as
they were, and the next rebuild drops the leftovers first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from infra.sql_readmodels import POSTGRES, Dialect, Execute, SqlLayout
from projections.base import Projection
from projections.schema import Table


class CopyableStore(Protocol):
    """What a SQL store offers so a copy of a projection can be built in it."""

    dialect: Dialect

    def write_connection(self) -> AbstractContextManager[Execute]: ...

    def layout(self, tables: Sequence[Table]) -> SqlLayout: ...

    def new_transaction(self, execute: Execute, projection: str, position: int, names: Mapping[str, str]) -> Any: ...

    def transaction(self, projection: str, names: Mapping[str, str] | None = None) -> AbstractContextManager[Any]: ...

    def position(self, projection: str) -> int: ...


class CopyLost(Exception):
    """The copy's tracking row is gone: another rebuild of the projection discarded it."""


def _copy_suffix(generation: int) -> str:
    return f"__r{generation}"


def _copy_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(name)}__r\d+$")


def _tables(execute: Execute, dialect: Dialect) -> list[str]:
    if dialect is POSTGRES:
        rows = execute("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()", [])
    else:
        rows = execute("SELECT name FROM sqlite_master WHERE type = 'table'", [])
    return [r["name"] for r in rows]


def _rename_indexes(execute: Execute, dialect: Dialect, copy: str, live: str) -> None:
    """The copy's index names (``<copy>_...``) become the live ones (``<live>_...``)."""
    if dialect is POSTGRES:
        for row in execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
                           [live]):
            if row["indexname"].startswith(copy + "_"):
                execute(f'ALTER INDEX "{row["indexname"]}" RENAME TO "{live}{row["indexname"][len(copy):]}"', [])
    else:
        # SQLite cannot rename an index: drop the copy's; the layout's DDL creates them again.
        for row in execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                           [live]):
            if row["name"].startswith(copy + "_"):
                execute(f'DROP INDEX "{row["name"]}"', [])


def _discard_copies(store: CopyableStore, projection: Projection) -> None:
    """Drop what rebuilds of ``projection`` that never swapped left behind (tables, tracking rows)."""
    layout = store.layout(projection.tables)
    patterns = [_copy_pattern(t) for t in layout.tables]
    tracking = _copy_pattern(projection.name)
    p = store.dialect.placeholder
    with store.write_connection() as execute:
        for table in _tables(execute, store.dialect):
            if any(pattern.match(table) for pattern in patterns):
                execute(f"DROP TABLE IF EXISTS {table}", [])
        for row in execute("SELECT name FROM projection_tracking", []):
            if tracking.match(row["name"]):
                execute(f"DELETE FROM projection_tracking WHERE name = {p}", [row["name"]])


class _CopyStore:
    """The copy seen as a runner's store: each batch its own transaction (catch-up)."""

    def __init__(self, copy: SqlProjectionCopy):
        self.copy = copy

    def ensure_tables(self, projection: str, version: int, tables: Sequence[Table]) -> None:
        """The copy's tables are made by ``SqlProjectionCopy.create``."""

    def transaction(self, projection: str) -> AbstractContextManager[Any]:
        return self.copy.store.transaction(self.copy.name, names=self.copy.names)

    def position(self, projection: str) -> int:
        return self.copy.store.position(self.copy.name)


class _WithinSwap(_CopyStore):
    """The copy seen as a runner's store inside the swap: every batch on the swap's connection,
    committed with the swap or not at all."""

    def __init__(self, copy: SqlProjectionCopy, execute: Execute, position: int):
        super().__init__(copy)
        self.execute = execute
        self.at = position

    @contextmanager
    def _batch(self) -> Iterator[Any]:
        tx = self.copy.store.new_transaction(self.execute, self.copy.name, self.at, self.copy.names)
        yield tx
        if tx.new_position is not None:
            self.at = tx.new_position

    def transaction(self, projection: str) -> AbstractContextManager[Any]:
        return self._batch()

    def position(self, projection: str) -> int:
        return self.at


class SqlProjectionCopy:
    def __init__(self, store: CopyableStore, projection: Projection, generation: int):
        self.store = store
        self.projection = projection
        self.layout = store.layout(projection.tables)
        self.name = projection.name + _copy_suffix(generation)
        self.names = {t: t + _copy_suffix(generation) for t in self.layout.tables}

    def create(self) -> None:
        p = self.store.dialect.placeholder
        with self.store.write_connection() as execute:
            for statement in self.layout.create(self.names):
                execute(statement, [])
            execute(f"INSERT INTO projection_tracking (name, position, version) VALUES ({p}, 0, {p})",
                    [self.name, self.projection.version])

    def catch_up_store(self) -> _CopyStore:
        return _CopyStore(self)

    def swap(self, catch_up: Callable[[Any], None], before_commit: Callable[[int], None]) -> int:
        """Apply the last events and swap the copy in, in one transaction; returns the position
        the live projection then stands at."""
        d, p, live = self.store.dialect, self.store.dialect.placeholder, self.projection.name
        with self.store.write_connection() as execute:
            found = execute(f"SELECT position FROM projection_tracking WHERE name = {p}{d.lock_row}", [live])
            copied = execute(f"SELECT position FROM projection_tracking WHERE name = {p}", [self.name])
            if not copied:
                raise CopyLost(f"the copy {self.name} was discarded by another rebuild")
            within = _WithinSwap(self, execute, int(copied[0]["position"]))
            catch_up(within)
            position = within.at
            for statement in self.layout.drop:
                execute(statement, [])
            for table, copy in self.names.items():
                execute(f"ALTER TABLE {copy} RENAME TO {table}", [])
                _rename_indexes(execute, d, copy, table)
            for statement in self.layout.live_ddl():
                execute(statement, [])
            if found:  # one more numbered commit: a row cache then drops late write-throughs from before
                execute(f"UPDATE projection_tracking SET position = {p}, version = {p}, commits = commits + 1 "
                        f"WHERE name = {p}",
                        [position, self.projection.version, live])
            else:
                execute(f"INSERT INTO projection_tracking (name, position, version) VALUES ({p}, {p}, {p})",
                        [live, position, self.projection.version])
            # A Kafka-fed projection: every event up to ``position`` is in the new tables, whichever
            # partition it came from; later ones are not (offsets stay: they were never past those).
            execute(f"UPDATE projection_partitions SET position = {p} WHERE projection = {p} AND position < {p}",
                    [position, live, position])
            execute(f"DELETE FROM projection_tracking WHERE name = {p}", [self.name])
            before_commit(position)
        return position


class SqlCopies:
    """What a SQL store mixes in to take part in rebuilds (it provides ``CopyableStore``)."""

    def discard_copies(self: Any, projection: Projection) -> None:
        _discard_copies(self, projection)

    def copy_for_rebuild(self: Any, projection: Projection, generation: int) -> SqlProjectionCopy:
        return SqlProjectionCopy(self, projection, generation)
