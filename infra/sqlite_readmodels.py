"""Read models in SQLite (the embedded default): rows and tracking positions in one database file,
so a projection's rows and its position commit in one transaction."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra.dead_letters import DEAD_LETTERS_DDL, DeadLetterLog, read_dead_letters
from infra.sql_readmodels import (
    PARTITIONS_DDL,
    REBUILDS_DDL,
    TRACKING_DDL,
    ensure_projection_tables,
    Execute,
    SQLITE,
    SqlTransaction,
    find_rows,
    migrate_tracking,
    query_rows,
    read_model_layout,
    read_tracking,
    SqlLayout,
    tracking_update,
)
from projections.operations import DeadLetter
from infra.sql_rebuild import SqlCopies
from projections.schema import Table
from projections.store import ListQuery, ListResult, Row

def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL survives an application crash (not a power loss), which is what a rebuildable
    # read model needs; the event store keeps full durability.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _executor(conn: sqlite3.Connection):
    def execute(sql: str, params: Sequence[Any]) -> list[Mapping[str, Any]]:
        return [dict(r) for r in conn.execute(sql, params)]

    return execute


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SQLiteFile:
    """A read-model database file: one writer connection behind a lock, one reader per thread,
    and the tracking tables every projection store in it shares."""

    dialect = SQLITE

    def __init__(self, path: Path | str):
        self.path = str(path)
        self._write_lock = threading.Lock()
        self._writer = _connect(self.path)
        self._writer.execute(TRACKING_DDL)
        with _write_transaction(self._writer):
            migrate_tracking(_executor(self._writer), SQLITE)
        self._writer.execute(PARTITIONS_DDL)
        self._writer.execute(DEAD_LETTERS_DDL)
        self._writer.execute(REBUILDS_DDL)
        self._local = threading.local()

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path)
        return conn

    def position(self, projection: str) -> int:
        return self.tracking(projection)[0]

    def tracking(self, projection: str) -> tuple[int, int]:
        """(position, numbered commits) of a projection, read together."""
        return read_tracking(_executor(self._reader()), SQLITE, projection)

    def ping(self) -> None:
        self._reader().execute("SELECT 1").fetchone()

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        return read_dead_letters(_executor(self._reader()), "?", projection)

    @contextmanager
    def dead_letter_transaction(self, projection: str) -> Iterator[DeadLetterLog]:
        """A projection's dead letters alone, for a store that keeps its rows elsewhere
        (Elasticsearch); under the same write lock as the projections' transactions."""
        with self._write_lock, _write_transaction(self._writer):
            yield DeadLetterLog(_executor(self._writer), "?", projection)

    def new_transaction(self, execute: Execute, projection: str, position: int,
                        names: Mapping[str, str] | None = None) -> Any:
        """The store's kind of projection transaction over ``execute`` (read models or search)."""
        raise NotImplementedError

    @contextmanager
    def transaction(self, projection: str, names: Mapping[str, str] | None = None) -> Iterator[Any]:
        """A projection's write transaction: its rows and its new position commit together.
        ``names``: write these tables under other names (a rebuild's copy)."""
        with self._write_lock, _write_transaction(self._writer):
            execute = _executor(self._writer)
            position, commits = read_tracking(execute, SQLITE, projection)
            tx = self.new_transaction(execute, projection, position, names)
            tx.commits = commits
            yield tx
            update = tracking_update("?", projection, tx.new_position, tx.numbered)
            if update is not None:
                self._writer.execute(*update)

    @contextmanager
    def write_connection(self) -> Iterator[Execute]:
        """One write transaction (the database's only writer while it lasts)."""
        with self._write_lock, _write_transaction(self._writer):
            yield _executor(self._writer)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Whether this process got the lock ``name`` (held until the block ends, or the process
        dies): a lock file beside the database, so it also keeps other processes out."""
        with open(f"{self.path}.{name}.lock", "a") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)

    def close(self) -> None:
        self._writer.close()


class SQLiteReadModelStore(SQLiteFile, SqlCopies):
    def layout(self, tables: Sequence[Table]) -> SqlLayout:
        return read_model_layout(SQLITE, tables)

    def ensure_tables(self, projection: str, version: int, tables: Sequence[Table]) -> None:
        """Create the projection's tables; if its version changed, drop them and start over."""
        layout = self.layout(tables)
        with self.write_connection() as execute:
            ensure_projection_tables(execute, SQLITE, projection, version, drop=layout.drop, create=layout.live_ddl())

    def new_transaction(self, execute: Execute, projection: str, position: int,
                        names: Mapping[str, str] | None = None) -> SqlTransaction:
        return SqlTransaction(execute, SQLITE, projection, position, names)

    def get(self, table: Table, key: Mapping[str, Any]) -> Row | None:
        rows = self.find(table, key)
        return rows[0] if rows else None

    def find(self, table: Table, where: Mapping[str, Any]) -> list[Row]:
        return find_rows(_executor(self._reader()), SQLITE, table, where)

    def query(self, table: Table, query: ListQuery) -> ListResult:
        conn = self._reader()
        conn.execute("BEGIN")  # one read snapshot, so the page and its total agree
        try:
            return query_rows(_executor(conn), SQLITE, table, query)
        finally:
            conn.execute("COMMIT")


class ScratchReadModelStore(SQLiteReadModelStore):
    """A private, in-memory read-model database, thrown away after use: time travel replays
    history into one through the live projections' handlers. Its one connection serves writes
    and reads, so it is for one thread at a time."""

    def __init__(self) -> None:
        super().__init__(":memory:")

    def _reader(self) -> sqlite3.Connection:
        return self._writer
