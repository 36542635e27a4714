"""SQL for read-model tables declared with ``projections.schema``: one implementation for every
projection, parameterised by a small dialect so SQLite and PostgreSQL share the query logic."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from infra.dead_letters import DEAD_LETTERS_DDL, DeadLetterLog
from projections.schema import Column, Table
from projections.store import Filter, ListQuery, ListResult, PartitionPosition, Row, Sort

_COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "lt": "<", "gte": ">=", "lte": "<="}


@dataclass(frozen=True)
class Dialect:
    placeholder: str
    types: Mapping[str, str]
    # Appended to a SELECT of a tracking row to hold it for the transaction (SQLite locks the
    # whole database for a write transaction, so needs nothing).
    lock_row: str = ""

    def json_contains(self, column: str, count: int) -> tuple[str, bool]:
        """SQL true when the JSON array ``column`` holds any of ``count`` values, and whether
        those values are passed as one array parameter (True) or one parameter each."""
        raise NotImplementedError


class SQLiteDialect(Dialect):
    def json_contains(self, column: str, count: int) -> tuple[str, bool]:
        marks = ", ".join([self.placeholder] * count)
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value IN ({marks}))", False


class PostgresDialect(Dialect):
    def json_contains(self, column: str, count: int) -> tuple[str, bool]:
        return f"{column} ?| {self.placeholder}", True


SQLITE = SQLiteDialect(
    placeholder="?",
    types={
        "text": "TEXT", "uuid": "TEXT", "instant": "TEXT", "date": "TEXT",
        "int": "INTEGER", "float": "REAL", "bool": "INTEGER", "json": "TEXT",
    },
)
POSTGRES = PostgresDialect(
    placeholder="%s",
    lock_row=" FOR UPDATE",
    types={
        "text": "TEXT", "uuid": "TEXT", "instant": "TEXT", "date": "TEXT",
        "int": "BIGINT", "float": "DOUBLE PRECISION", "bool": "BOOLEAN", "json": "JSONB",
    },
)


# Where each projection fed by a partitioned feed (Kafka) stands in each partition; written in the
# same transaction as the projection's rows (see SqlTransaction.track_partitions).
TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_tracking ("
    "name TEXT PRIMARY KEY, position BIGINT NOT NULL, version INTEGER NOT NULL, "
    "commits BIGINT NOT NULL DEFAULT 0)"
)
PARTITIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_partitions ("
    "projection TEXT NOT NULL, feed TEXT NOT NULL, partition_id INTEGER NOT NULL, "
    "next_offset BIGINT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (projection, feed, partition_id))"
)

# One row per projection rebuild (infra/rebuild_log.py says what each column means).
REBUILDS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_rebuilds ("
    "projection TEXT NOT NULL, generation BIGINT NOT NULL, state TEXT NOT NULL, position BIGINT NOT NULL, "
    "head BIGINT NOT NULL, events_per_second DOUBLE PRECISION NOT NULL, started_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL, finished_at TEXT, error TEXT, PRIMARY KEY (projection, generation))"
)


def migrate_tracking(execute: Execute, dialect: Dialect) -> None:
    """Add ``projection_tracking.commits`` to a database made before it (see ``NumberedCommits``);
    the caller serialises this across processes (a lock, a write transaction)."""
    if dialect is POSTGRES:
        columns = execute("SELECT column_name AS name FROM information_schema.columns "
                          "WHERE table_schema = current_schema() AND table_name = 'projection_tracking'", [])
    else:
        columns = execute("PRAGMA table_info(projection_tracking)", [])
    if not any(c["name"] == "commits" for c in columns):
        execute("ALTER TABLE projection_tracking ADD COLUMN commits BIGINT NOT NULL DEFAULT 0", [])


class NumberedCommits:
    """A projection transaction whose commit may be numbered: ``projection_tracking.commits``
    counts a projection's numbered commits, and is incremented in the commit itself, under the
    tracking row's lock. The Redis row cache numbers every commit it writes through, to apply
    the write-throughs of several workers in commit order (infra/redis_cache.py)."""

    commits = 0  # the projection's numbered commits before this transaction (set by the store)
    numbered = False

    def number_commit(self) -> int:
        """This transaction's commit will be counted: its number."""
        self.numbered = True
        return self.commits + 1


def tracking_query(dialect: Dialect, projection: str, *, lock: bool = False) -> tuple[str, list[Any]]:
    """The read of a projection's tracking row (``lock``: held for the caller's transaction)."""
    return (f"SELECT position, commits FROM projection_tracking WHERE name = {dialect.placeholder}"
            f"{dialect.lock_row if lock else ''}", [projection])


def tracking_from(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(position, numbered commits) from the rows of ``tracking_query`` (none yet: (0, 0))."""
    return (int(rows[0]["position"]), int(rows[0]["commits"])) if rows else (0, 0)


def read_tracking(execute: Execute, dialect: Dialect, projection: str, *, lock: bool = False) -> tuple[int, int]:
    """(position, numbered commits) of a projection, read together."""
    return tracking_from(execute(*tracking_query(dialect, projection, lock=lock)))


def tracking_update(p: str, projection: str, position: int | None, numbered: bool) -> tuple[str, list[Any]] | None:
    """The UPDATE of a projection's tracking row that commits with its transaction, if any:
    its new position, and one more numbered commit."""
    sets = ([f"position = {p}"] if position is not None else []) + (["commits = commits + 1"] if numbered else [])
    if not sets:
        return None
    return (f"UPDATE projection_tracking SET {', '.join(sets)} WHERE name = {p}",
            [*([position] if position is not None else []), projection])


@dataclass(frozen=True)
class SqlLayout:
    """A projection's objects in a SQL store (what ``ensure_tables`` makes and a rebuild copies)."""

    tables: tuple[str, ...]  # the tables a rebuild's copy duplicates, by their live names
    create: Callable[[Mapping[str, str]], list[str]]  # DDL of those tables under the given names
    drop: tuple[str, ...]  # drops every live object, in dependency order
    derived: tuple[str, ...] = ()  # DDL of objects over the live tables only (SQLite's FTS vocabulary)

    def live_ddl(self) -> list[str]:
        return [*self.create({t: t for t in self.tables}), *self.derived]


def read_model_layout(dialect: Dialect, tables: Sequence[Table]) -> SqlLayout:
    """A read model's tables (``projections.schema``), in either database."""
    by_name = {t.name: t for t in tables}
    return SqlLayout(
        tables=tuple(by_name),
        create=lambda names: [s for t in tables for s in create_table_sql(dialect, t, names[t.name])],
        drop=tuple(f"DROP TABLE IF EXISTS {t.name}" for t in tables),
    )



def create_table_sql(dialect: Dialect, table: Table, name: str | None = None) -> list[str]:
    name = name or table.name
    columns = ", ".join(f"{c.name} {dialect.types[c.type]}" for c in table.columns)
    statements = [f"CREATE TABLE IF NOT EXISTS {name} ({columns}, PRIMARY KEY ({', '.join(table.primary_key)}))"]
    for index in table.indexes:
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {name}_{'_'.join(index)} ON {name} ({', '.join(index)})"
        )
    return statements


def to_db(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.type == "json":
        return json.dumps(value, separators=(",", ":"))
    if column.type == "bool":
        return bool(value)
    return value


def from_db(table: Table, record: Mapping[str, Any]) -> Row:
    row: Row = {}
    for c in table.columns:
        value = record[c.name]
        if value is not None:
            if c.type == "json" and isinstance(value, str):
                value = json.loads(value)
            elif c.type == "bool":
                value = bool(value)
        row[c.name] = value
    return row


def upsert_sql(dialect: Dialect, table: Table, row: Mapping[str, Any]) -> tuple[str, list[Any]]:
    names = [c.name for c in table.columns if c.name in row]
    marks = ", ".join([dialect.placeholder] * len(names))
    updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in table.primary_key)
    conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(table.primary_key)}) {conflict}"
    )
    return sql, [to_db(table.column(n), row[n]) for n in names]


def where_equal(dialect: Dialect, table: Table, where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    if not where:
        return "", []
    clause = " AND ".join(f"{n} = {dialect.placeholder}" for n in where)
    return f" WHERE {clause}", [to_db(table.column(n), v) for n, v in where.items()]


def update_sql(
    dialect: Dialect, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]
) -> tuple[str, list[Any]]:
    sets = ", ".join(f"{n} = {dialect.placeholder}" for n in values)
    where, params = where_equal(dialect, table, key)
    return (
        f"UPDATE {table.name} SET {sets}{where}",
        [to_db(table.column(n), v) for n, v in values.items()] + params,
    )


class QueryBuilder:
    """Filters, sorting, page/perPage and keyset (cursor) pagination over one table."""

    def __init__(self, dialect: Dialect, table: Table):
        self.d = dialect
        self.table = table

    def _value_expr(self, column: Column) -> str:
        if column.ranked:
            cases = " ".join(f"WHEN '{v}' THEN {i}" for i, v in enumerate(column.ranked))
            return f"(CASE {column.name} {cases} END)"
        return column.name

    def _typed(self, column: Column, value: Any) -> Any:
        if column.ranked and value in column.ranked:
            return column.ranked.index(value)
        return to_db(column, value)

    def _sort_expr(self, column: Column) -> str:
        # Missing values sort first ascending, and a keyset cursor can compare them.
        blank = "-1" if column.ranked or column.type in ("int", "float") else "''"
        return f"COALESCE({self._value_expr(column)}, {blank})"

    def filter_sql(self, filters: Sequence[Filter]) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        p = self.d.placeholder
        for f in filters:
            column = self.table.column(f.column)
            values = f.value if isinstance(f.value, list) else [f.value]
            if f.op == "in" and not values:
                clauses.append("1 = 0")
                continue
            if column.type == "json":
                contains, as_array = self.d.json_contains(column.name, len(values))
                clauses.append(f"NOT {contains}" if f.op == "ne" else contains)
                params.extend([list(values)] if as_array else values)
            elif f.op == "in":
                clauses.append(f"{self._value_expr(column)} IN ({', '.join([p] * len(values))})")
                params.extend(self._typed(column, v) for v in values)
            elif f.op == "like":
                escaped = str(f.value).lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                clauses.append(f"LOWER({column.name}) LIKE {p} ESCAPE '\\'")
                params.append(f"%{escaped}%")
            elif f.value is None and f.op in ("eq", "ne"):
                clauses.append(f"{column.name} IS {'NOT ' if f.op == 'ne' else ''}NULL")
            else:
                clauses.append(f"{self._value_expr(column)} {_COMPARE[f.op]} {p}")
                params.append(self._typed(column, f.value))
        return clauses, params

    def order(self, sort: Sequence[Sort]) -> list[tuple[str, bool, str]]:
        """(expression, descending, column name) for each sort key, ending with the primary key."""
        keys = [(self._sort_expr(self.table.column(s.column)), s.descending, s.column) for s in sort]
        for pk in self.table.primary_key:
            if pk not in [s.column for s in sort]:
                keys.append((pk, False, pk))
        return keys

    def select(self, query: ListQuery) -> tuple[str, list[Any], str, list[Any]]:
        """The page's SELECT and its parameters, and the COUNT for the same filters."""
        clauses, params = self.filter_sql(query.filters)
        count_where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        count_sql = f"SELECT COUNT(*) FROM {self.table.name}{count_where}"
        count_params = list(params)
        keys = self.order(query.sort)
        if query.after is not None:
            clause, after_params = self._after(keys, query.after)
            clauses.append(clause)
            params.extend(after_params)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        order_by = ", ".join(f"{expr} {'DESC' if desc else 'ASC'}" for expr, desc, _ in keys)
        limit = query.per_page + (1 if query.cursor_mode else 0)
        sql = f"SELECT * FROM {self.table.name}{where} ORDER BY {order_by} LIMIT {int(limit)}"
        if not query.cursor_mode:
            sql += f" OFFSET {int((query.page - 1) * query.per_page)}"
        return sql, params, count_sql, count_params

    def _after(self, keys: list[tuple[str, bool, str]], values: Sequence[Any]) -> tuple[str, list[Any]]:
        # (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ... with each comparison's direction per key.
        p = self.d.placeholder
        ors: list[str] = []
        params: list[Any] = []
        for i, (expr, desc, _) in enumerate(keys):
            ands = [f"{keys[j][0]} = {p}" for j in range(i)]
            ands.append(f"{expr} {'<' if desc else '>'} {p}")
            params.extend(values[: i + 1])
            ors.append("(" + " AND ".join(ands) + ")")
        return "(" + " OR ".join(ors) + ")", params

    def sort_values(self, keys: list[tuple[str, bool, str]], row: Row) -> list[Any]:
        """The values a keyset cursor carries for ``row`` (as the ORDER BY expressions see them)."""
        values = []
        for _, _, name in keys:
            column = self.table.column(name)
            value = row.get(name)
            if column.ranked:
                value = column.ranked.index(value) if value in column.ranked else -1
            elif value is None:
                value = -1 if column.type in ("int", "float") else ""
            values.append(value)
        return values


Execute = Callable[[str, Sequence[Any]], list[Mapping[str, Any]]]


class SqlTransaction(NumberedCommits):
    """A projection's write transaction over any SQL connection (given as an ``execute``).

    ``names`` maps declared table names to the physical tables written instead (a rebuild writes
    its copy, ``tasks__r7``, through the same handlers that write ``tasks``)."""

    def __init__(self, execute: Execute, dialect: Dialect, projection: str, position: int,
                 names: Mapping[str, str] | None = None):
        self._execute = execute
        self.dialect = dialect
        self.projection = projection
        self.position = position
        self.new_position: int | None = None
        self._names = dict(names or {})
        self._physical: dict[str, Table] = {}

    def _at(self, table: Table) -> Table:
        if table.name not in self._names:
            return table
        physical = self._physical.get(table.name)
        if physical is None:
            physical = self._physical[table.name] = replace(table, name=self._names[table.name])
        return physical

    def upsert(self, table: Table, row: Mapping[str, Any]) -> None:
        self._execute(*upsert_sql(self.dialect, self._at(table), row))

    def update(self, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        if values:
            self._execute(*update_sql(self.dialect, self._at(table), key, values))

    def delete(self, table: Table, key: Mapping[str, Any]) -> None:
        table = self._at(table)
        where, params = where_equal(self.dialect, table, key)
        self._execute(f"DELETE FROM {table.name}{where}", params)

    def get(self, table: Table, key: Mapping[str, Any]) -> Row | None:
        rows = self.find(table, key)
        return rows[0] if rows else None

    def find(self, table: Table, where: Mapping[str, Any]) -> list[Row]:
        return find_rows(self._execute, self.dialect, self._at(table), where)

    def get_each(self, table: Table, keys: Sequence[Mapping[str, Any]]) -> list[Row | None]:
        """The rows at these primary keys (None where there is none), in one query per 500 keys
        rather than one each: in a pipeline every read waits for the server."""
        physical = self._at(table)
        p = self.dialect.placeholder
        found: dict[tuple[Any, ...], Row] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            match = " AND ".join(f"{k} = {p}" for k in table.primary_key)
            params = [to_db(table.column(k), key[k]) for key in chunk for k in table.primary_key]
            rows = self._execute(f"SELECT * FROM {physical.name} WHERE " + " OR ".join([f"({match})"] * len(chunk)),
                                 params)
            for record in rows:
                row = from_db(table, record)
                found[_key_of(table, row)] = row
        return [found.get(_key_of(table, key)) for key in keys]

    def advance(self, position: int) -> None:
        if position < self.position:
            raise ValueError(f"{self.projection}: position may not go back ({position} < {self.position})")
        self.new_position = position

    @property
    def dead_letters(self) -> DeadLetterLog | None:
        """The projection's dead letters, committed with its rows and position. A rebuild's copy
        keeps none: a poison event fails the rebuild (the live copy stays in service) rather than
        being filed under a copy that is about to be renamed."""
        if self._names:
            return None
        return DeadLetterLog(self._execute, self.dialect.placeholder, self.projection)

    def partitions(self, feed: str) -> dict[int, PartitionPosition]:
        return read_partitions(self._execute, self.dialect.placeholder, self.projection, feed)

    def track_partitions(self, feed: str, positions: Mapping[int, PartitionPosition]) -> None:
        write_partitions(self._execute, self.dialect.placeholder, self.projection, feed, positions)


def partitions_query(p: str, projection: str) -> tuple[str, list[Any]]:
    """The read behind ``read_partitions``: every feed of the projection (one, in practice), so a
    store can send it ahead with its batch's first statement without knowing the feed."""
    return (f"SELECT feed, partition_id, next_offset, position FROM projection_partitions WHERE projection = {p}",
            [projection])


def read_partitions(execute: Execute, p: str, projection: str, feed: str) -> dict[int, PartitionPosition]:
    """Where ``projection`` stands in each partition of ``feed`` (``projection_partitions``);
    ``p`` is the connection's placeholder. Shared by every SQL transaction that tracks partitions."""
    rows = execute(*partitions_query(p, projection))
    return {int(r["partition_id"]): PartitionPosition(int(r["next_offset"]), int(r["position"]))
            for r in rows if r["feed"] == feed}


def write_partitions(execute: Execute, p: str, projection: str, feed: str,
                     positions: Mapping[int, PartitionPosition]) -> None:
    """Record where ``projection`` now stands in these partitions of ``feed``, in the caller's transaction."""
    if not positions:
        return
    rows = ", ".join([f"({p}, {p}, {p}, {p}, {p})"] * len(positions))
    execute(
        f"INSERT INTO projection_partitions (projection, feed, partition_id, next_offset, position) "
        f"VALUES {rows} ON CONFLICT (projection, feed, partition_id) "
        f"DO UPDATE SET next_offset = excluded.next_offset, position = excluded.position",
        [v for partition, at in positions.items() for v in (projection, feed, partition, at.offset, at.position)],
    )


def _key_of(table: Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(to_db(table.column(k), row[k]) for k in table.primary_key)


def find_rows(execute: Execute, dialect: Dialect, table: Table, where: Mapping[str, Any]) -> list[Row]:
    clause, params = where_equal(dialect, table, where)
    return [from_db(table, r) for r in execute(f"SELECT * FROM {table.name}{clause}", params)]


def query_rows(execute: Execute, dialect: Dialect, table: Table, query: ListQuery) -> ListResult:
    """Run a list query; ``execute`` must run both statements in one transaction."""
    builder = QueryBuilder(dialect, table)
    sql, params, count_sql, count_params = builder.select(query)
    rows = [from_db(table, r) for r in execute(sql, params)]
    total = None
    if not query.cursor_mode:
        total = int(next(iter(execute(count_sql, count_params)[0].values())))
    result = ListResult(rows=rows, total=total)
    if query.cursor_mode and len(rows) > query.per_page:
        result.rows = rows[: query.per_page]
        result.last_sort_values = builder.sort_values(builder.order(query.sort), result.rows[-1])
    return result


def ensure_projection_tables(
    execute: Execute, dialect: Dialect, projection: str, version: int, drop: Sequence[str], create: Sequence[str]
) -> None:
    """Create a projection's tables and tracking row; if the projection's version changed, drop
    its tables first, so it rebuilds from position 0. The caller runs this in one transaction."""
    p = dialect.placeholder
    execute(TRACKING_DDL, [])
    execute(PARTITIONS_DDL, [])
    execute(DEAD_LETTERS_DDL, [])
    rows = execute(f"SELECT version, commits FROM projection_tracking WHERE name = {p}", [projection])
    # Carried over, plus one: the reset changes every row and nothing writes it through, so a row
    # cache realigns (from 0, the cache would take every later write-through for a late one).
    commits = int(rows[0]["commits"]) + 1 if rows else 0
    if rows and rows[0]["version"] != version:
        for statement in drop:
            execute(statement, [])
        execute(f"DELETE FROM projection_tracking WHERE name = {p}", [projection])
        execute(f"DELETE FROM projection_partitions WHERE projection = {p}", [projection])
        # Rebuilt from position 0 by the new code: every event will be met (and judged) again.
        execute(f"DELETE FROM projection_dead_letters WHERE projection = {p}", [projection])
        rows = []
    for statement in create:
        execute(statement, [])
    if not rows:
        execute(f"INSERT INTO projection_tracking (name, position, version, commits) VALUES ({p}, 0, {p}, {p})",
                [projection, version, commits])
