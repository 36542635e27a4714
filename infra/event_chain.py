"""Tamper evidence: a SHA-256 hash chain over the stored events, written in the append's transaction.

Each stored event gets a link in ``<events table>_chain`` (position, previous_position, link):

    link = SHA-256(previous link, position, originator id, originator version, topic, state)

every field length-prefixed (8 bytes, big-endian) so no two different events encode alike; the
first event's previous link is 32 zero bytes. The chain follows position order without assuming
contiguous positions (PostgreSQL leaves gaps after rolled-back inserts): ``previous_position``
names the event each link was chained after.

The recorders below are eventsourcing's application recorders with one addition: after the
events' INSERT, still inside its transaction and under the lock that serialises appends (SQLite's
write lock; PostgreSQL's EXCLUSIVE table lock), they read the chain's head, compute the new links
and insert them in one statement. The composition root selects them with eventsourcing's
``APPLICATION_RECORDER_TOPIC`` setting. Events without a link (a store from before the chain, or
a writer without it) are chained on start-up and before the next append, with a warning logged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

log = logging.getLogger("taskflow.audit")

GENESIS = bytes(32)
# Rows chained per statement when linking events that have no link yet.
CATCH_UP_CHUNK = 5000


def chain_link(previous: bytes, position: int, originator_id: UUID | str, version: int, topic: str,
               state: bytes) -> bytes:
    uuid = originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
    parts = (previous, b"%d" % position, str(uuid).encode(), b"%d" % version, topic.encode(), bytes(state))
    return hashlib.sha256(b"".join(len(part).to_bytes(8, "big") + part for part in parts)).digest()


class ChainHead(NamedTuple):
    position: int | None  # None: nothing chained yet
    link: bytes


class ChainRow(NamedTuple):
    position: int
    previous_position: int | None
    link: bytes


class ChainAheadOfLog(PersistenceError):
    """The chain has a link at or after the position a new event was given: events at the tail
    were deleted and SQLite is reusing their positions. Appending would hide the deletion."""


def extend(head: ChainHead, events: Iterable[tuple[int, UUID | str, int, str, bytes]]) -> list[ChainRow]:
    """The links of ``events`` (position, originator id, version, topic, state), in position order."""
    rows = []
    position, link = head
    for event_position, originator_id, version, topic, state in events:
        new_link = chain_link(link, event_position, originator_id, version, topic, state)
        rows.append(ChainRow(event_position, position, new_link))
        position, link = event_position, new_link
    return rows


class ChainTables:
    """The SQL the chain needs, for one events table and its chain table (SQLite or PostgreSQL)."""

    def __init__(self, events: str, position: str, chain: str, mark: str,
                 insert_links: Callable[[Any, list[ChainRow]], None]):
        self.chain = chain
        self._insert_links = insert_links
        self.last_link_sql = f"SELECT position, link FROM {chain} ORDER BY position DESC LIMIT 1"
        # The chain's head and the last event before the new ones, in one round trip.
        self.heads_before_sql = (
            f"SELECT last.position, last.link, (SELECT MAX({position}) FROM {events} WHERE {position} < {mark}) "
            f"AS before FROM (SELECT 1) AS one LEFT JOIN ({self.last_link_sql}) AS last ON TRUE"
        )
        self.max_event_sql = f"SELECT MAX({position}) AS head FROM {events}"
        self.unchained_sql = (
            f"SELECT {position} AS position, originator_id, originator_version, topic, state FROM {events} "
            f"WHERE {position} > {mark} AND {position} <= {mark} ORDER BY {position} LIMIT {CATCH_UP_CHUNK}"
        )

    def last_link(self, c: Any) -> ChainHead:
        c.execute(self.last_link_sql)
        row = c.fetchone()
        return ChainHead(None, GENESIS) if row is None else ChainHead(row["position"], bytes(row["link"]))

    def append(self, c: Any, positions: Sequence[int], stored_events: Sequence[StoredEvent]) -> None:
        """Chain the events just inserted at ``positions`` (in the same transaction)."""
        if not positions:
            return
        c.execute(self.heads_before_sql, (positions[0],))
        row = c.fetchone()
        head = ChainHead(None, GENESIS) if row["position"] is None else ChainHead(row["position"], bytes(row["link"]))
        if head.position is not None and head.position >= positions[0]:
            raise ChainAheadOfLog(
                f"the event chain has a link at position {head.position}, but a new event was given position "
                f"{positions[0]}: events at the end of the log were removed (run `taskflow audit verify`)"
            )
        before = row["before"]
        if before is not None and (head.position is None or before > head.position):
            head = self.catch_up(c, head, before)
        self._insert_links(c, extend(head, (
            (p, e.originator_id, e.originator_version, e.topic, e.state) for p, e in zip(positions, stored_events)
        )))

    def catch_up(self, c: Any, head: ChainHead, upto: int) -> ChainHead:
        """Chain the events after the chain's head up to position ``upto``."""
        first = head.position
        while head.position is None or head.position < upto:
            c.execute(self.unchained_sql, (head.position or 0, upto))
            events = [(r["position"], r["originator_id"], r["originator_version"], r["topic"], r["state"])
                      for r in c.fetchall()]
            if not events:
                break
            rows = extend(head, events)
            self._insert_links(c, rows)
            head = ChainHead(rows[-1].position, rows[-1].link)
        log.warning("chained events that had no link", extra={"chain": self.chain, "after": first, "upto": upto})
        return head


class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        # Set before the parent's constructor, which builds the CREATE TABLE statements.
        self.chain_table_name = f"{events_table_name}_chain"
        super().__init__(datastore, events_table_name)
        self.chain = ChainTables(events_table_name, "rowid", self.chain_table_name, "?", self._insert_links)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.chain_table_name} ("
            "position INTEGER PRIMARY KEY, previous_position INTEGER, link BLOB NOT NULL)",
        ]

    def create_table(self) -> None:
        super().create_table()
        self.chain_unlinked_events()

    def chain_unlinked_events(self) -> None:
        with self.datastore.transaction(commit=True) as c:
            head = self.chain.last_link(c)
            c.execute(self.chain.max_event_sql)
            last_event = c.fetchone()["head"]
            if last_event is not None and (head.position is None or last_event > head.position):
                self.chain.catch_up(c, head, last_event)

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        positions = super()._insert_events(c, stored_events, **kwargs) or []
        self.chain.append(c, positions, stored_events)
        return positions

    def _insert_links(self, c: Any, rows: list[ChainRow]) -> None:
        # executemany runs in SQLite's C loop: no round trips to save.
        c.executemany(f"INSERT INTO {self.chain_table_name} VALUES (?, ?, ?)", rows)


class ChainedPostgresApplicationRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = _quoted(datastore.schema)
        self.chain_table_name = f"{events_table_name}_chain"
        self.qualified_chain = f"{schema}.{_quoted(self.chain_table_name)}"
        self.chain = ChainTables(f"{schema}.{_quoted(events_table_name)}", "notification_id",
                                 self.qualified_chain, "%s", self._insert_links)

    def create_table(self) -> None:
        # Processes started together on a fresh database (API workers, relay, projector) all
        # create the tables, and CREATE TABLE IF NOT EXISTS fails beside a concurrent twin
        # (unique violation in pg_type): they take turns under a session advisory lock (held on a
        # second connection of the pool while the parent creates its tables).
        with self.datastore.get_connection() as lock:
            lock.execute("SELECT pg_advisory_lock(hashtext(%s))", (self.qualified_chain,))
            try:
                super().create_table()
                with self.datastore.transaction(commit=True) as c:
                    c.execute(f"CREATE TABLE IF NOT EXISTS {self.qualified_chain} ("
                              "position bigint PRIMARY KEY, previous_position bigint, link bytea NOT NULL)")
            finally:
                lock.execute("SELECT pg_advisory_unlock(hashtext(%s))", (self.qualified_chain,))
        self.chain_unlinked_events()

    def chain_unlinked_events(self) -> None:
        """Chain, one chunk per transaction, events stored before the chain existed."""
        with self.datastore.transaction(commit=False) as c:
            head = self.chain.last_link(c)
            c.execute(self.chain.max_event_sql)
            last_event = c.fetchone()["head"]
        if last_event is None or (head.position is not None and last_event <= head.position):
            return  # the usual case: no need to take the table lock
        while True:
            with self.datastore.transaction(commit=True) as c:
                self._lock_table(c)
                head = self.chain.last_link(c)
                c.execute(self.chain.max_event_sql)
                last_event = c.fetchone()["head"]
                if last_event is None or (head.position is not None and last_event <= head.position):
                    return
                self.chain.catch_up(c, head, min(last_event, (head.position or 0) + CATCH_UP_CHUNK))

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        # Called inside the insert's transaction, after the table lock and the INSERT.
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs) or []
        self.chain.append(curs, positions, stored_events)
        return positions

    def _insert_links(self, c: Any, rows: list[ChainRow]) -> None:
        c.execute(
            f"INSERT INTO {self.qualified_chain} (position, previous_position, link) "
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[])",
            ([r.position for r in rows], [r.previous_position for r in rows], [r.link for r in rows]),
        )


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
