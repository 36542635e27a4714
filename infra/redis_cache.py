"""A Redis cache of single read-model rows, kept fresh by the projections.

- The projection runner writes through: after a batch commits, it stores the new state of every
  row the batch touched, then records the batch's position as the cache's position.
- Readers look rows up by key and, on a miss, fill the cache from the database with SET NX, which
  never overwrites what the runner wrote (the runner's writes come after its commit, so a reader's
  older copy either loses the NX race or is overwritten).
- A read that may have used the cache reports min(database position, cache position): what it
  serves is never older than the position it reports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis

from projections.schema import Table
from projections.store import ListQuery, ListResult, ProjectionTransaction, ReadModelReader, Row

ROW_TTL_SECONDS = 3600
_TOMBSTONE = "null"


def _row_key(prefix: str, table: Table, key: Mapping[str, Any]) -> str:
    return f"{prefix}row:{table.name}:" + "|".join(str(key[k]) for k in table.primary_key)


class RowCache:
    def __init__(self, client: redis.Redis, prefix: str):
        self.redis = client
        self.prefix = prefix

    def _position_key(self, projection: str) -> str:
        return f"{self.prefix}cache-position:{projection}"

    def write_through(self, projection: str, rows: list[tuple[Table, dict[str, Any], Row | None]], position: int) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for table, key, row in rows:
                value = _TOMBSTONE if row is None else json.dumps(row)
                pipe.set(_row_key(self.prefix, table, key), value, ex=ROW_TTL_SECONDS)
            pipe.set(self._position_key(projection), position)
            pipe.execute()

    def lookup(self, projection: str, table: Table, key: Mapping[str, Any]) -> tuple[int | None, str | None]:
        """(cache position of the projection, cached value) in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._position_key(projection))
            pipe.get(_row_key(self.prefix, table, key))
            position, value = pipe.execute()
        return (int(position) if position is not None else None), value

    def fill(self, table: Table, key: Mapping[str, Any], row: Row | None) -> None:
        value = _TOMBSTONE if row is None else json.dumps(row)
        self.redis.set(_row_key(self.prefix, table, key), value, ex=ROW_TTL_SECONDS, nx=True)

    def position(self, projection: str) -> int | None:
        value = self.redis.get(self._position_key(projection))
        return int(value) if value is not None else None

    def realign(self, projection: str, tables: tuple[Table, ...], position: int) -> None:
        """At a runner's start: if the cache is behind the database (a batch committed but the
        runner stopped before writing it through), drop the projection's cached rows."""
        cached = self.position(projection)
        if cached == position:
            return
        self._drop_rows(tables)
        self.redis.set(self._position_key(projection), position)

    def _drop_rows(self, tables: tuple[Table, ...]) -> None:
        for table in tables:
            for name in self.redis.scan_iter(match=f"{self.prefix}row:{table.name}:*", count=1000):
                self.redis.delete(name)

    def clear(self, projection: str, tables: tuple[Table, ...]) -> None:
        """Forget the projection's rows and position (a rebuild, just before its swap commits):
        without a position, readers bypass the cache, so none fills it with a row of the old tables."""
        self.redis.delete(self._position_key(projection))
        self._drop_rows(tables)

    def resume(self, projection: str, position: int) -> None:
        """After ``clear`` and the swap's commit: the (empty) cache stands at ``position``, unless
        the projection's runner has already written a later batch through."""
        self.redis.set(self._position_key(projection), position, nx=True)


class TouchRecorder:
    """Wraps a projection transaction and remembers which rows its handlers wrote."""

    def __init__(self, tx: ProjectionTransaction):
        self.tx = tx
        self.touched: dict[tuple[str, tuple[Any, ...]], tuple[Table, dict[str, Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tx, name)

    def _touch(self, table: Table, row_or_key: Mapping[str, Any]) -> None:
        key = {k: row_or_key[k] for k in table.primary_key}
        self.touched[(table.name, tuple(key.values()))] = (table, key)

    def upsert(self, table: Table, row: Mapping[str, Any]) -> None:
        self.tx.upsert(table, row)
        self._touch(table, row)

    def update(self, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        self.tx.update(table, key, values)
        self._touch(table, key)

    def delete(self, table: Table, key: Mapping[str, Any]) -> None:
        self.tx.delete(table, key)
        self._touch(table, key)

    def final_rows(self) -> list[tuple[Table, dict[str, Any], Row | None]]:
        """The touched rows as the transaction will commit them (None where deleted): one read
        per table where the transaction can read many keys at once (the SQL stores)."""
        get_each = getattr(self.tx, "get_each", None)
        if get_each is None:
            return [(table, key, self.tx.get(table, key)) for table, key in self.touched.values()]
        by_table: dict[str, tuple[Table, list[dict[str, Any]]]] = {}
        for table, key in self.touched.values():
            by_table.setdefault(table.name, (table, []))[1].append(key)
        return [(table, key, row) for table, keys in by_table.values()
                for key, row in zip(keys, get_each(table, keys))]


class CachedReader:
    """A ReadModelReader whose single-row ``get`` goes through the row cache."""

    def __init__(self, inner: ReadModelReader, cache: RowCache, projection_of: Mapping[str, str]):
        self.inner = inner
        self.cache = cache
        self.projection_of = projection_of  # table name -> projection that writes it

    def get(self, table: Table, key: Mapping[str, Any]) -> Row | None:
        projection = self.projection_of.get(table.name)
        if projection is None:
            return self.inner.get(table, key)
        cache_position, value = self.cache.lookup(projection, table, key)
        if cache_position is None:  # the runner has not written through yet: no guarantee to lean on
            return self.inner.get(table, key)
        if value is not None:
            return None if value == _TOMBSTONE else json.loads(value)
        row = self.inner.get(table, key)
        self.cache.fill(table, key, row)
        return row

    def position(self, projection: str) -> int:
        database = self.inner.position(projection)
        cached = self.cache.position(projection)
        return database if cached is None else min(database, cached)

    def find(self, table: Table, where: Mapping[str, Any]) -> list[Row]:
        return self.inner.find(table, where)

    def query(self, table: Table, query: ListQuery) -> ListResult:
        return self.inner.query(table, query)

    def ping(self) -> None:
        self.inner.ping()
        self.cache.redis.ping()
