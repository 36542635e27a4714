"""An aggregate's stored events with their global positions, for history and audit reads.

eventsourcing's event store returns an aggregate's events without their notification ids, so
this reads the recorder's table directly (one query on the primary key's leading column)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier


class StoredEventHistory:
    def __init__(self, app: Application[Any]):
        self.app = app
        self.recorder = app.recorder
        if not isinstance(self.recorder, (SQLiteApplicationRecorder, PostgresApplicationRecorder)):
            raise TypeError(f"no history reader for {type(self.recorder).__name__}")

    def _rows(self, aggregate_id: UUID) -> list[tuple[int, int, str, bytes]]:
        recorder = self.recorder
        if isinstance(recorder, SQLiteApplicationRecorder):
            with recorder.datastore.transaction(commit=False) as c:
                c.execute(
                    f"SELECT rowid AS position, originator_version, topic, state FROM {recorder.events_table_name} "
                    "WHERE originator_id = ? ORDER BY originator_version",
                    (aggregate_id.hex,),
                )
                return [tuple(r) for r in c.fetchall()]
        statement = SQL(
            "SELECT notification_id AS position, originator_version, topic, state FROM {}.{} "
            "WHERE originator_id = %s ORDER BY originator_version"
        ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(statement, (aggregate_id,))
            return [(r["position"], r["originator_version"], r["topic"], bytes(r["state"])) for r in c.fetchall()]

    def events_of(self, aggregate_id: UUID) -> Sequence[tuple[int, Any]]:
        return [
            (position, self.app.mapper.to_domain_event(StoredEvent(aggregate_id, version, topic, state)))
            for position, version, topic, state in self._rows(aggregate_id)
        ]

    def ping(self) -> None:
        self.recorder.max_notification_id()
