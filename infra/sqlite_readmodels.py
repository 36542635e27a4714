"""Read models in SQLite (the embedded default): rows and tracking positions in one database file,
so a projection's rows and its position commit in one transaction."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra.sql_readmodels import (
    SQLITE,
    QueryBuilder,
    create_table_sql,
    from_db,
    update_sql,
    upsert_sql,
    where_equal,
)
from projections.schema import Table
from projections.store import ListQuery, ListResult, Row

TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_tracking ("
    "name TEXT PRIMARY KEY, position INTEGER NOT NULL, version INTEGER NOT NULL)"
)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL is durable across application crashes (not power loss), which is what a
    # rebuildable read model needs; the event store keeps full durability.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SQLiteTransaction:
    def __init__(self, conn: sqlite3.Connection, projection: str, position: int):
        self.conn = conn
        self.projection = projection
        self.position = position
        self.new_position: int | None = None

    def upsert(self, table: Table, row: Mapping[str, Any]) -> None:
        self.conn.execute(*upsert_sql(SQLITE, table, row))

    def update(self, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        if values:
            self.conn.execute(*update_sql(SQLITE, table, key, values))

    def delete(self, table: Table, key: Mapping[str, Any]) -> None:
        where, params = where_equal(SQLITE, table, key)
        self.conn.execute(f"DELETE FROM {table.name}{where}", params)

    def get(self, table: Table, key: Mapping[str, Any]) -> Row | None:
        rows = self.find(table, key)
        return rows[0] if rows else None

    def find(self, table: Table, where: Mapping[str, Any]) -> list[Row]:
        clause, params = where_equal(SQLITE, table, where)
        return [from_db(table, r) for r in self.conn.execute(f"SELECT * FROM {table.name}{clause}", params)]

    def advance(self, position: int) -> None:
        if position < self.position:
            raise ValueError(f"{self.projection}: position may not go back ({position} < {self.position})")
        self.new_position = position


class SQLiteReadModelStore:
    def __init__(self, path: Path | str):
        self.path = str(path)
        self._write_lock = threading.Lock()
        self._writer = _connect(self.path)
        self._writer.execute(TRACKING_DDL)
        self._local = threading.local()

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path)
        return conn

    # --- schema ------------------------------------------------------------------------------
    def ensure_tables(self, projection: str, version: int, tables: Sequence[Table]) -> None:
        """Create the projection's tables; if its version changed, drop them and start over."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT version FROM projection_tracking WHERE name = ?", (projection,)
                ).fetchone()
                if row is not None and row["version"] != version:
                    for table in tables:
                        conn.execute(f"DROP TABLE IF EXISTS {table.name}")
                    conn.execute("DELETE FROM projection_tracking WHERE name = ?", (projection,))
                    row = None
                for table in tables:
                    for statement in create_table_sql(SQLITE, table):
                        conn.execute(statement)
                if row is None:
                    conn.execute(
                        "INSERT INTO projection_tracking (name, position, version) VALUES (?, 0, ?)",
                        (projection, version),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # --- writes ------------------------------------------------------------------------------
    @contextmanager
    def transaction(self, projection: str) -> Iterator[SQLiteTransaction]:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                tx = SQLiteTransaction(conn, projection, self._position(conn, projection))
                yield tx
                if tx.new_position is not None:
                    conn.execute(
                        "UPDATE projection_tracking SET position = ? WHERE name = ?",
                        (tx.new_position, projection),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # --- reads -------------------------------------------------------------------------------
    @staticmethod
    def _position(conn: sqlite3.Connection, projection: str) -> int:
        row = conn.execute("SELECT position FROM projection_tracking WHERE name = ?", (projection,)).fetchone()
        return row["position"] if row else 0

    def position(self, projection: str) -> int:
        return self._position(self._reader(), projection)

    def get(self, table: Table, key: Mapping[str, Any]) -> Row | None:
        rows = self.find(table, key)
        return rows[0] if rows else None

    def find(self, table: Table, where: Mapping[str, Any]) -> list[Row]:
        clause, params = where_equal(SQLITE, table, where)
        cursor = self._reader().execute(f"SELECT * FROM {table.name}{clause}", params)
        return [from_db(table, r) for r in cursor]

    def query(self, table: Table, query: ListQuery) -> ListResult:
        builder = QueryBuilder(SQLITE, table)
        sql, params, count_sql, count_params = builder.select(query)
        conn = self._reader()
        # One read transaction, so the page and its total agree.
        conn.execute("BEGIN")
        try:
            rows = [from_db(table, r) for r in conn.execute(sql, params)]
            total = None if query.cursor_mode else conn.execute(count_sql, count_params).fetchone()[0]
        finally:
            conn.execute("COMMIT")
        result = ListResult(rows=rows, total=total)
        if query.cursor_mode and len(rows) > query.per_page:
            result.rows = rows[: query.per_page]
            result.last_sort_values = builder.sort_values(builder.order(query.sort), result.rows[-1])
        return result

    def ping(self) -> None:
        self._reader().execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._writer.close()
