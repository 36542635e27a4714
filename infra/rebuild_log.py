"""``projection_rebuilds``: one row per rebuild, in the read-model database, so any process (the
admin status route, an operator with psql) can see what runs and how far it got.

| column | meaning |
|---|---|
| projection, generation | the rebuild; its copy is ``<table>__r<generation>`` (Elasticsearch: ``<alias>-v<version>-r<generation>``) |
| state | ``running`` (catching up), ``swapping``, ``done``, ``failed`` |
| position, head | the copy's applied position and the event store's head when last measured |
| events_per_second | positions applied per second since the start |
| started_at, updated_at, finished_at | ISO-8601 UTC |
| error | why it failed (``abandoned`` when its process died) |

Whether a rebuild still runs is decided by a lock (``exclusive`` on the read-model store), not by
this table: a row left ``running`` by a process that died is marked ``failed`` by the next rebuild.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RebuildLog:
    """Rows of ``projection_rebuilds`` (the read-model stores create the table), written through
    a SQL store's ``write_connection``."""

    def __init__(self, store: Any):
        self.store = store
        self.p = store.dialect.placeholder

    def begin(self, projection: str, head: int) -> int:
        """Record a new rebuild (the caller holds the projection's rebuild lock); returns its
        generation. Rows of earlier rebuilds still marked active belonged to a dead process."""
        p, now = self.p, _now()
        with self.store.write_connection() as execute:
            execute(
                f"UPDATE projection_rebuilds SET state = 'failed', error = 'abandoned (its process stopped)',"
                f" finished_at = {p} WHERE projection = {p} AND state IN ('running', 'swapping')",
                [now, projection],
            )
            rows = execute(f"SELECT MAX(generation) AS g FROM projection_rebuilds WHERE projection = {p}", [projection])
            generation = int(rows[0]["g"] or 0) + 1 if rows else 1
            execute(
                "INSERT INTO projection_rebuilds (projection, generation, state, position, head, events_per_second,"
                f" started_at, updated_at) VALUES ({p}, {p}, 'running', 0, {p}, 0, {p}, {p})",
                [projection, generation, head, now, now],
            )
        return generation

    def progress(self, projection: str, generation: int, state: str, position: int, head: int, rate: float) -> None:
        p = self.p
        with self.store.write_connection() as execute:
            execute(
                f"UPDATE projection_rebuilds SET state = {p}, position = {p}, head = {p}, events_per_second = {p},"
                f" updated_at = {p} WHERE projection = {p} AND generation = {p}",
                [state, position, head, rate, _now(), projection, generation],
            )

    def finish(self, projection: str, generation: int, error: str | None = None) -> None:
        p, now = self.p, _now()
        with self.store.write_connection() as execute:
            execute(
                f"UPDATE projection_rebuilds SET state = {p}, error = {p}, updated_at = {p}, finished_at = {p}"
                f" WHERE projection = {p} AND generation = {p}",
                ["failed" if error else "done", error, now, now, projection, generation],
            )

    def latest(self, projection: str) -> dict[str, Any] | None:
        p = self.p
        with self.store.write_connection() as execute:
            rows = execute(
                f"SELECT * FROM projection_rebuilds WHERE projection = {p} ORDER BY generation DESC LIMIT 1",
                [projection],
            )
        return dict(rows[0]) if rows else None
