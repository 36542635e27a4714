"""An aggregate's stored events with their global positions, for history and audit reads.

eventsourcing's event store returns an aggregate's events without their notification ids, so
this reads the recorder's table directly (one indexed query by aggregate id)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder


class StoredEventHistory:
    def __init__(self, app: Application[Any]):
        self.app = app
        recorder = app.recorder
        if not isinstance(recorder, SQLiteApplicationRecorder):
            raise TypeError(f"no history reader for {type(recorder).__name__}")
        self.recorder = recorder

    def events_of(self, aggregate_id: UUID) -> Sequence[tuple[int, Any]]:
        table = self.recorder.events_table_name
        with self.recorder.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, originator_version, topic, state FROM {table} "
                "WHERE originator_id = ? ORDER BY originator_version",
                (aggregate_id.hex,),
            )
            rows = c.fetchall()
        return [
            (
                row["rowid"],
                self.app.mapper.to_domain_event(
                    StoredEvent(aggregate_id, row["originator_version"], row["topic"], row["state"])
                ),
            )
            for row in rows
        ]

    def ping(self) -> None:
        self.recorder.max_notification_id()
