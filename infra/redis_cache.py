"""A Redis cache of single read-model rows, kept fresh by the projections.

- Every commit of a cached projection is numbered (``projection_tracking.commits``, incremented in
  the same transaction: ``TouchRecorder.final_rows``). After the commit, the worker writes through
  the new state of every row the batch touched, and records the commit's number and position as
  the cache's (one Lua script, so the check and the writes are one step).
- Several workers of one projection (Kafka consumers of a group, a partition moving in a
  rebalance, log followers in several processes) commit one at a time (the tracking-row lock),
  but write through after their commits, in any order, or never (a worker killed in between).
  So a write-through applies only in order: one whose number is not above the cache's is late (a
  later commit's state already stands, or was invalidated after it) and is dropped; one whose
  predecessor is missing first invalidates the projection's cached rows.
- Invalidating is one increment: row keys carry the projection's generation, so bumping it leaves
  the old rows unreachable (they expire with their TTL) instead of scanning them away.
- Readers look rows up by key and, on a miss, fill the cache from the database with SET NX, which
  never overwrites what a worker wrote (the writes come after the commit, so a reader's older copy
  either loses the NX race or is overwritten), under the generation they looked up in (a copy
  read before an invalidation is not seen after it).
- A read that may have used the cache reports min(database position, cache position): what it
  serves is never older than the position it reports.

The scripts build row keys from the generation they read: on a Redis cluster, a projection's keys
would need one hash slot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from projections.schema import Table
from projections.store import ListQuery, ListResult, ProjectionTransaction, ReadModelReader, Row

log = logging.getLogger("taskflow.cache")

ROW_TTL_SECONDS = 3600
_TOMBSTONE = "null"

# KEYS[1] the projection's state hash (generation, commit, position). ARGV: the commit's number,
# its position, the rows' TTL, the row-key prefix, then (key suffix, value) pairs.
# Returns 1 (written), 2 (written after invalidating: a predecessor never wrote through) or 0 (late).
_WRITE_THROUGH = """
local number = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[1], 'commit'))
if last and last >= number then return 0 end
local written = 1
local generation = redis.call('HGET', KEYS[1], 'generation') or '0'
if last ~= number - 1 then
  generation = redis.call('HINCRBY', KEYS[1], 'generation', 1)
  written = 2
end
for i = 5, #ARGV, 2 do
  redis.call('SET', ARGV[4] .. generation .. ':' .. ARGV[i], ARGV[i + 1], 'EX', ARGV[3])
end
redis.call('HSET', KEYS[1], 'commit', number, 'position', ARGV[2])
return written
"""

# KEYS[1] the state hash. ARGV: the row-key prefix and suffix.
# Returns {} when the cache has no position, else {position, generation[, value]}.
_LOOKUP = """
local state = redis.call('HMGET', KEYS[1], 'position', 'generation')
if not state[1] then return {} end
local generation = state[2] or '0'
return {state[1], generation, redis.call('GET', ARGV[1] .. generation .. ':' .. ARGV[2])}
"""

# KEYS[1] the state hash. ARGV: the database's commit count and position, read together.
# Unless the cache has written that commit (or a later one) through, its rows are invalidated and
# it stands at the database's commit. Returns 1 if it invalidated.
_REALIGN = """
local last = tonumber(redis.call('HGET', KEYS[1], 'commit'))
if last and last >= tonumber(ARGV[1]) and redis.call('HEXISTS', KEYS[1], 'position') == 1 then return 0 end
redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'commit', ARGV[1], 'position', ARGV[2])
return 1
"""


def _key_suffix(table: Table, key: Mapping[str, Any]) -> str:
    return f"{table.name}:" + "|".join(str(key[k]) for k in table.primary_key)


def _value(row: Row | None) -> str:
    return _TOMBSTONE if row is None else json.dumps(row)


@dataclass(frozen=True)
class WrittenRows:
    """What a committed batch writes through: its number among the projection's commits, and the
    rows it touched as it committed them (None where deleted)."""

    commit: int
    rows: list[tuple[Table, dict[str, Any], Row | None]]


@dataclass(frozen=True)
class Lookup:
    position: int | None  # the cache's position; None: the cache is not in use for the projection
    generation: str | None = None
    value: str | None = None


class RowCache:
    """Over a client that decodes responses (``infra.redis_clients.connect``)."""

    def __init__(self, client: redis.Redis, prefix: str):
        self.redis = client
        self.prefix = prefix
        self._write_through = client.register_script(_WRITE_THROUGH)
        self._lookup = client.register_script(_LOOKUP)
        self._realign = client.register_script(_REALIGN)

    def _state_key(self, projection: str) -> str:
        return f"{self.prefix}cache:{projection}"

    def _rows_prefix(self, projection: str) -> str:
        return f"{self.prefix}row:{projection}:"

    def write_through(self, projection: str, written: WrittenRows, position: int) -> None:
        args: list[Any] = [written.commit, position, ROW_TTL_SECONDS, self._rows_prefix(projection)]
        for table, key, row in written.rows:
            args += [_key_suffix(table, key), _value(row)]
        outcome = self._write_through(keys=[self._state_key(projection)], args=args)
        if outcome != 1:
            log.info("row cache: %s", "late write-through dropped" if outcome == 0 else
                     "an earlier commit was never written through: cached rows invalidated",
                     extra={"projection": projection, "commit": written.commit, "position": position})

    def lookup(self, projection: str, table: Table, key: Mapping[str, Any]) -> Lookup:
        """The cache's position for the projection, and the row's cached value, in one round trip."""
        found = self._lookup(keys=[self._state_key(projection)],
                             args=[self._rows_prefix(projection), _key_suffix(table, key)])
        if not found:
            return Lookup(None)
        value = found[2] if len(found) > 2 else None
        return Lookup(int(found[0]), str(found[1]), value)

    def fill(self, projection: str, generation: str, table: Table, key: Mapping[str, Any], row: Row | None) -> None:
        """Cache a row read from the database after a miss in ``generation``, unless it is taken.
        Once that generation is invalidated, nothing reads what this writes."""
        self.redis.set(f"{self._rows_prefix(projection)}{generation}:{_key_suffix(table, key)}", _value(row),
                       ex=ROW_TTL_SECONDS, nx=True)

    def position(self, projection: str) -> int | None:
        value = self.redis.hget(self._state_key(projection), "position")
        return int(value) if value is not None else None

    def realign(self, projection: str, position: int, commits: int) -> None:
        """Bring the cache to the database's commit (``commits``, at ``position``) when it is behind:
        a worker committed and stopped before writing through. At a worker's start, on a Kafka
        partition assignment (its previous owner may have died so), when a caught-up log follower
        sees another worker's commit unwritten-through for long, and after a rebuild's swap."""
        if self._realign(keys=[self._state_key(projection)], args=[commits, position]):
            log.info("row cache realigned: cached rows invalidated",
                     extra={"projection": projection, "commit": commits, "position": position})

    def clear(self, projection: str) -> None:
        """Forget the projection's rows and position (a rebuild, just before its swap commits):
        without a position, readers bypass the cache, so none fills it with a row of the old tables."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(self._state_key(projection), "generation", 1)
            pipe.hdel(self._state_key(projection), "position")
            pipe.execute()


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

    def final_rows(self) -> WrittenRows:
        """At the end of the batch: the touched rows as the transaction will commit them (None
        where deleted; one read per table where the transaction can read many keys at once, as the
        SQL stores can), and the commit's number (taking one: the commit then counts it, see
        ``NumberedCommits``)."""
        get_each = getattr(self.tx, "get_each", None)
        if get_each is None:
            rows = [(table, key, self.tx.get(table, key)) for table, key in self.touched.values()]
        else:
            by_table: dict[str, tuple[Table, list[dict[str, Any]]]] = {}
            for table, key in self.touched.values():
                by_table.setdefault(table.name, (table, []))[1].append(key)
            rows = [(table, key, row) for table, keys in by_table.values()
                    for key, row in zip(keys, get_each(table, keys), strict=True)]
        return WrittenRows(self.tx.number_commit(), rows)  # type: ignore[attr-defined]


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
        found = self.cache.lookup(projection, table, key)
        if found.position is None:  # no worker has written through yet: no guarantee to lean on
            return self.inner.get(table, key)
        if found.value is not None:
            return None if found.value == _TOMBSTONE else json.loads(found.value)
        row = self.inner.get(table, key)
        self.cache.fill(projection, found.generation or "0", table, key, row)
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
