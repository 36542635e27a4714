"""Reads the whole event log with its hash chain, for audit reads, export and verification.

Rows are read in position order in keyset chunks (one short read transaction each), so memory
stays constant however long the log is. Events and links are read as two streams and merged: a
link without its event (a removed event) and an event without a link both show up.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment

from infra.event_chain import GENESIS, ChainedPostgresApplicationRecorder, ChainedSQLiteApplicationRecorder

CHUNK = 2000


@dataclass(frozen=True)
class LogRow:
    """One position of the log: the stored event (None when removed) and its link (None when unchained)."""

    position: int
    event: StoredEvent | None
    previous_position: int | None
    link: bytes | None
    previous_link: bytes | None  # the link stored at previous_position (GENESIS for the first event)


class EventLog:
    """The stored events and their links, read straight from the event store's tables."""

    def __init__(self, recorder: Any):
        self.recorder = recorder
        if isinstance(recorder, ChainedSQLiteApplicationRecorder):
            events, position, chain, mark = recorder.events_table_name, "rowid", recorder.chain_table_name, "?"
        elif isinstance(recorder, ChainedPostgresApplicationRecorder):
            events = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
            position, chain, mark = "notification_id", recorder.qualified_chain, "%s"
        else:
            raise TypeError(f"no hash chain on {type(recorder).__name__}")
        self._mark = mark
        self._events_sql = (
            f"SELECT {position} AS position, originator_id, originator_version, topic, state FROM {events} "
            f"WHERE {position} > {mark} AND {position} <= {mark} ORDER BY {position} LIMIT {CHUNK}"
        )
        self._links_sql = (
            f"SELECT c.position, c.previous_position, c.link, p.link AS previous_link FROM {chain} c "
            f"LEFT JOIN {chain} p ON p.position = c.previous_position "
            f"WHERE c.position > {mark} AND c.position <= {mark} ORDER BY c.position LIMIT {CHUNK}"
        )
        self._max_event_sql = f"SELECT MAX({position}) AS head FROM {events}"
        self._max_link_sql = f"SELECT MAX(position) AS head FROM {chain}"
        self._at_sql = (
            f"SELECT e.{position} AS position, e.originator_id, e.originator_version, e.topic, e.state, c.link "
            f"FROM {events} e LEFT JOIN {chain} c ON c.position = e.{position} WHERE e.{position} "
        )
        self._link_at_sql = f"SELECT link FROM {chain} WHERE position = {mark}"

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.recorder.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return c.fetchall()

    def head(self) -> int:
        """The last position of the log, counting removed events whose link remains.
        Events are read before links: a link is committed with its event, so every event up to
        this position is visible to the reads that follow."""
        last_event = self._query(self._max_event_sql)[0]["head"] or 0
        last_link = self._query(self._max_link_sql)[0]["head"] or 0
        return max(last_event, last_link)

    def link_at(self, position: int) -> bytes | None:
        rows = self._query(self._link_at_sql, (position,))
        return bytes(rows[0]["link"]) if rows else None

    def _chunks(self, sql: str, after: int, upto: int) -> Iterator[Any]:
        while after < upto:
            rows = self._query(sql, (after, upto))
            if not rows:
                return
            yield from rows
            after = rows[-1]["position"]

    def links(self, after: int, upto: int) -> Iterator[Any]:
        return self._chunks(self._links_sql, after, upto)

    def rows(self, after: int = 0, upto: int | None = None) -> Iterator[LogRow]:
        """Every position in (after, upto], in order."""
        upto = self.head() if upto is None else upto
        events = self._chunks(self._events_sql, after, upto)
        links = self.links(after, upto)
        event, link = next(events, None), next(links, None)
        while event is not None or link is not None:
            position = min(r["position"] for r in (event, link) if r is not None)
            e = event if event is not None and event["position"] == position else None
            c = link if link is not None and link["position"] == position else None
            yield LogRow(
                position=position,
                event=self._stored(e) if e is not None else None,
                previous_position=c["previous_position"] if c is not None else None,
                link=bytes(c["link"]) if c is not None else None,
                previous_link=_previous_link(c),
            )
            if e is not None:
                event = next(events, None)
            if c is not None:
                link = next(links, None)

    def events_at(self, positions: Sequence[int]) -> list[tuple[int, StoredEvent, bytes | None]]:
        """The stored events at ``positions`` (those that exist), in position order, with their links."""
        if not positions:
            return []
        if self._mark == "?":
            rows = self._query(self._at_sql + f"IN ({', '.join('?' * len(positions))})", list(positions))
        else:
            rows = self._query(self._at_sql + "= ANY(%s)", (list(positions),))
        found = [(r["position"], self._stored(r), bytes(r["link"]) if r["link"] is not None else None) for r in rows]
        return sorted(found, key=lambda item: item[0])

    def _stored(self, row: Any) -> StoredEvent:
        return StoredEvent(
            originator_id=UUID(str(row["originator_id"])),
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=bytes(row["state"]),
        )


def _previous_link(link_row: Any) -> bytes | None:
    if link_row is None:
        return None
    if link_row["previous_position"] is None:
        return GENESIS
    return bytes(link_row["previous_link"]) if link_row["previous_link"] is not None else None


def export_record(row: LogRow) -> dict[str, Any]:
    """One line of an export: the raw stored fields and the links, enough to recompute the link."""
    event = row.event
    return {
        "position": row.position,
        "previousPosition": row.previous_position,
        "aggregateId": str(event.originator_id) if event else None,
        "version": event.originator_version if event else None,
        "topic": event.topic if event else None,
        "state": base64.b64encode(event.state).decode() if event else None,
        "previousLink": row.previous_link.hex() if row.previous_link is not None else None,
        "link": row.link.hex() if row.link is not None else None,
    }


class StoredAuditLog:
    """What the audit routes read: events by position (decoded) with their links, and exports."""

    def __init__(self, app: Application[Any]):
        self.mapper = app.mapper
        self.log = EventLog(app.recorder)

    def events_at(self, positions: Sequence[int]) -> list[tuple[int, Any, str | None]]:
        return [
            (position, self.mapper.to_domain_event(stored), link.hex() if link is not None else None)
            for position, stored, link in self.log.events_at(positions)
        ]

    def head_position(self) -> int:
        return self.log.head()

    def export(self, first: int, last: int) -> Iterator[bytes]:
        for row in self.log.rows(after=first - 1, upto=last):
            yield json.dumps(export_record(row), separators=(",", ":")).encode() + b"\n"


@contextmanager
def opened_event_log(app_name: str, env: dict[str, str]) -> Iterator[EventLog]:
    """The event log of an application's store, opened read-only: no table is created and no
    unlinked event is chained (which would hide an event inserted behind TaskFlow's back)."""
    factory = InfrastructureFactory.construct(Environment(app_name, {**env, "CREATE_TABLE": "no"}))
    try:
        yield EventLog(factory.application_recorder())
    finally:
        factory.close()
