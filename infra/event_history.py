"""Aggregates' stored events with their global positions, for history, audit and time-travel reads.

eventsourcing's event store returns an aggregate's events without their notification ids, so
this reads the recorder's table directly (one query on the primary key's leading column)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

Row = tuple[int, UUID, int, str, bytes]  # position, originator id, version, topic, state
# Ids per query when reading many aggregates (well under SQLite's limit on bound parameters).
_IDS_PER_QUERY = 500
_TAIL_PAGE = 1000


class StoredEventHistory:
    def __init__(self, app: Application[Any]):
        self.app = app
        self.recorder = app.recorder
        if not isinstance(self.recorder, (SQLiteApplicationRecorder, PostgresApplicationRecorder)):
            raise TypeError(f"no history reader for {type(self.recorder).__name__}")

    def _rows(self, aggregate_ids: Sequence[UUID]) -> list[Row]:
        recorder = self.recorder
        if isinstance(recorder, SQLiteApplicationRecorder):
            marks = ", ".join("?" * len(aggregate_ids))
            with recorder.datastore.transaction(commit=False) as c:
                c.execute(
                    f"SELECT rowid AS position, originator_id, originator_version, topic, state "
                    f"FROM {recorder.events_table_name} WHERE originator_id IN ({marks})",
                    [i.hex for i in aggregate_ids],
                )
                return [(r[0], UUID(r[1]), r[2], r[3], r[4]) for r in c.fetchall()]
        statement = SQL(
            "SELECT notification_id AS position, originator_id, originator_version, topic, state FROM {}.{} "
            "WHERE originator_id = ANY(%s)"
        ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(statement, (list(aggregate_ids),))
            return [
                (r["position"], r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))
                for r in c.fetchall()
            ]

    def _decode(self, aggregate_id: UUID, version: int, topic: str, state: bytes) -> Any:
        return self.app.mapper.to_domain_event(StoredEvent(aggregate_id, version, topic, state))

    def events_of(self, aggregate_id: UUID) -> Sequence[tuple[int, Any]]:
        rows = sorted(self._rows([aggregate_id]), key=lambda r: r[2])
        return [(position, self._decode(*rest)) for position, *rest in rows]

    def events_of_each(self, aggregate_ids: Iterable[UUID]) -> Sequence[tuple[int, Any]]:
        """Every event of the given aggregates, in global position order (a few queries, not one
        per aggregate: a board of hundreds of tasks is read at once)."""
        ids = list(dict.fromkeys(aggregate_ids))
        rows: list[Row] = []
        for start in range(0, len(ids), _IDS_PER_QUERY):
            rows.extend(self._rows(ids[start : start + _IDS_PER_QUERY]))
        rows.sort(key=lambda r: r[0])
        return [(position, self._decode(*rest)) for position, *rest in rows]

    def events_after(self, position: int, event_classes: Sequence[type]) -> Sequence[tuple[int, Any]]:
        """The events of the given classes stored after ``position``, in order."""
        topics = [get_topic(c) for c in event_classes]
        found: list[tuple[int, Any]] = []
        while True:
            page = self.recorder.select_notifications(
                position, _TAIL_PAGE, topics=topics, inclusive_of_start=False
            )
            found.extend((n.id, self.app.mapper.to_domain_event(n)) for n in page)
            if len(page) < _TAIL_PAGE:
                return found
            position = page[-1].id

    def ping(self) -> None:
        self.recorder.max_notification_id()
