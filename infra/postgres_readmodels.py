"""Read models in PostgreSQL: the same tables and queries as the embedded store, over a
connection pool; a projection's rows and its position commit in one transaction, and the
position row is locked for that transaction, so two workers cannot apply the same batch."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from infra.dead_letters import DEAD_LETTERS_DDL, DeadLetterLog, blocked_query, read_dead_letters
from infra.sql_readmodels import (
    PARTITIONS_DDL,
    REBUILDS_DDL,
    TRACKING_DDL,
    ensure_projection_tables,
    Execute,
    NumberedCommits,
    partitions_query,
    POSTGRES,
    SqlLayout,
    SqlTransaction,
    find_rows,
    migrate_tracking,
    query_rows,
    read_model_layout,
    read_tracking,
    tracking_from,
    tracking_query,
    tracking_update,
)
from projections.operations import DeadLetter
from infra.sql_rebuild import SqlCopies
from projections.schema import Table
from projections.store import ListQuery, ListResult, Row

def _executor(conn: psycopg.Connection[Any], ahead: dict[tuple[str, tuple[Any, ...]], psycopg.Cursor[Any]] | None = None):
    """``ahead``: reads already sent in the pipeline, each answered once from its cursor when the
    same statement is asked for (anything else goes to the server as usual)."""

    def execute(sql: str, params: Sequence[Any]) -> list[Mapping[str, Any]]:
        sent = ahead.pop((sql, tuple(params)), None) if ahead else None
        if sent is not None:
            return sent.fetchall()
        cursor = conn.execute(sql, params)  # type: ignore[arg-type]
        # Only a query waits for its result: in pipeline mode writes are queued, not waited on.
        return cursor.fetchall() if sql.lstrip()[:4].upper() in ("SELE", "WITH") else []

    return execute


T = TypeVar("T", bound=NumberedCommits)


@contextmanager
def tracked_transaction(
    pool: ConnectionPool[psycopg.Connection[Any]],
    projection: str,
    make: Callable[[Callable[[str, Sequence[Any]], list[Mapping[str, Any]]], int], T],
    *,
    pipeline: bool = False,
) -> Iterator[T]:
    """A projection's write transaction: its tracking row locked for the whole batch (so two
    workers cannot apply the same batch), and its new position (and, when the row cache numbers it,
    one more commit) written in the same commit.

    ``pipeline``: the whole transaction runs in one pipeline: BEGIN travels with the lock's SELECT,
    the batch's writes with the COMMIT, so a batch costs two round trips plus one per read its
    handlers make (a consumer batch waits on each, and on a loaded machine each can wait for the
    server to be scheduled). psycopg's ``transaction()`` would sync at BEGIN and at COMMIT, hence
    explicit BEGIN/COMMIT in autocommit mode."""
    if not pipeline:
        with pool.connection() as conn, conn.transaction():
            execute = _executor(conn)
            tx = _locked(make, execute, read_tracking(execute, POSTGRES, projection, lock=True))
            yield tx
            _write_tracking(conn, projection, tx)
        return
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                lock = conn.execute(*tracking_query(POSTGRES, projection, lock=True))  # type: ignore[arg-type]
                # What a batch reads next (where it stands in each partition, which aggregates wait
                # behind a dead letter) travels with the lock: one round trip for the three.
                ahead = {(sql, tuple(params)): conn.execute(sql, params)  # type: ignore[arg-type]
                         for sql, params in (partitions_query("%s", projection), blocked_query("%s", projection))}
                tx = _locked(make, _executor(conn, ahead), tracking_from(lock.fetchall()))
                yield tx
                _write_tracking(conn, projection, tx)
                conn.execute("COMMIT")
        finally:
            try:
                # Whatever failed (a handler, a statement), nothing of the batch stays.
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                conn.autocommit = False  # as the pool's other users expect it
            except psycopg.Error:
                conn.close()  # broken: the pool replaces it (never hands it out in autocommit mode)


def _locked(make: Callable[[Execute, int], T], execute: Execute, tracking: tuple[int, int]) -> T:
    """The batch's transaction, standing where the locked tracking row (position, commits) says."""
    position, commits = tracking
    tx = make(execute, position)
    tx.commits = commits
    return tx


def _write_tracking(conn: psycopg.Connection[Any], projection: str, tx: Any) -> None:
    update = tracking_update("%s", projection, tx.new_position, tx.numbered)
    if update is not None:
        conn.execute(*update)


@contextmanager
def write_connection(pool: ConnectionPool[psycopg.Connection[Any]]) -> Iterator[Execute]:
    """One write transaction on a connection of the pool."""
    with pool.connection() as conn, conn.transaction():
        yield _executor(conn)


def tracked_position(pool: ConnectionPool[psycopg.Connection[Any]], projection: str) -> int:
    return tracked_commits(pool, projection)[0]


def tracked_commits(pool: ConnectionPool[psycopg.Connection[Any]], projection: str) -> tuple[int, int]:
    """(position, numbered commits) of a projection, read together."""
    with pool.connection() as conn:
        return read_tracking(_executor(conn), POSTGRES, projection)


# When each pooled connection last came back from a use that worked (a broken one is not returned).
_returned_at: WeakKeyDictionary[psycopg.Connection[Any], float] = WeakKeyDictionary()
# A connection back from a use this recently is not checked again: the check is a round trip on
# every checkout (each projection batch, each position a read reports). One idle longer is checked:
# its server may have restarted, or dropped it, meanwhile.
_CHECK_AFTER_IDLE_SECONDS = 1.0


def _note_returned(conn: psycopg.Connection[Any]) -> None:
    _returned_at[conn] = time.monotonic()


def _check_if_idle(conn: psycopg.Connection[Any]) -> None:
    if time.monotonic() - _returned_at.get(conn, float("-inf")) > _CHECK_AFTER_IDLE_SECONDS:
        ConnectionPool.check_connection(conn)


class PostgresReadModelStore(SqlCopies):
    dialect = POSTGRES

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 2.0):
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"row_factory": dict_row, "connect_timeout": 2},
            # A connection that died with its server is found on checkout, not mid-request.
            check=_check_if_idle,
            reset=_note_returned,
            open=True,
            name="taskflow-readmodels",
        )
        with self.pool.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(b"projection_tracking"),))
            conn.execute(TRACKING_DDL)
            migrate_tracking(_executor(conn), POSTGRES)
            conn.execute(PARTITIONS_DDL)
            conn.execute(DEAD_LETTERS_DDL)
            conn.execute(REBUILDS_DDL)

    def layout(self, tables: Sequence[Table]) -> SqlLayout:
        return read_model_layout(POSTGRES, tables)

    def ensure_tables(self, projection: str, version: int, tables: Sequence[Table]) -> None:
        """Create the projection's tables; if its version changed, drop them and start over.

        Serialised across processes with an advisory lock: several workers may start at once."""
        layout = self.layout(tables)
        with self.pool.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(projection.encode()),))
            ensure_projection_tables(_executor(conn), POSTGRES, projection, version, drop=layout.drop,
                                     create=layout.live_ddl())

    def write_connection(self) -> AbstractContextManager[Execute]:
        return write_connection(self.pool)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Whether this process got the lock ``name``: a session advisory lock on a connection of
        its own, held until the block ends (or the process dies, closing the connection)."""
        with psycopg.connect(self.pool.conninfo, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (zlib.crc32(f"exclusive:{name}".encode()),)).fetchone()
            yield bool(row and row[0])

    def new_transaction(self, execute: Execute, projection: str, position: int,
                        names: Mapping[str, str] | None = None) -> SqlTransaction:
        return SqlTransaction(execute, POSTGRES, projection, position, names)

    def transaction(self, projection: str, names: Mapping[str, str] | None = None) -> AbstractContextManager[SqlTransaction]:
        """``names``: write these tables under other names (a rebuild's copy)."""
        # Pipeline mode: a batch's writes go to the server without waiting for each answer,
        # which is most of the cost of applying events one statement at a time.
        return tracked_transaction(
            self.pool, projection,
            lambda execute, position: self.new_transaction(execute, projection, position, names),
            pipeline=True,
        )

    def position(self, projection: str) -> int:
        return tracked_position(self.pool, projection)

    def tracking(self, projection: str) -> tuple[int, int]:
        return tracked_commits(self.pool, projection)

    def get(self, table: Table, key: Mapping[str, Any]) -> Row | None:
        rows = self.find(table, key)
        return rows[0] if rows else None

    def find(self, table: Table, where: Mapping[str, Any]) -> list[Row]:
        with self.pool.connection() as conn:
            return find_rows(_executor(conn), POSTGRES, table, where)

    def query(self, table: Table, query: ListQuery) -> ListResult:
        with self.pool.connection() as conn:
            # One snapshot for the page and its total, taken once the table is locked: a query
            # that waited for a rebuild's swap must not read the new table with a snapshot from
            # before it (it would miss the rows the swap's transaction wrote). One round trip.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY;"
                         f" LOCK TABLE {table.name} IN ACCESS SHARE MODE")
            return query_rows(_executor(conn), POSTGRES, table, query)

    def ping(self) -> None:
        with self.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        with self.pool.connection() as conn:
            return read_dead_letters(_executor(conn), "%s", projection)

    @contextmanager
    def dead_letter_transaction(self, projection: str) -> Iterator[DeadLetterLog]:
        """A projection's dead letters alone, for a store that keeps its rows elsewhere
        (Elasticsearch). An advisory lock per projection stands in for the tracking-row lock, so
        the runner and an operator's retry or skip take turns, as they do on the SQL stores."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"dead-letters:{projection}".encode()),))
            yield DeadLetterLog(_executor(conn), "%s", projection)

    def close(self) -> None:
        self.pool.close()
