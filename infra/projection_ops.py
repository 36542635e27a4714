"""Projection operations for operators: status (from shared storage, so any process may answer:
the read API, the CLI), dead letters, and retrying or skipping a dead-lettered event.

Retry and skip run in the projection's own tracked transaction (the lock its runner takes for a
batch: the SQLite write lock, PostgreSQL's tracking row, the dead-letter lock for Elasticsearch),
so they are safe while the projector runs, in this process or another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification

from domain.errors import Conflict, NotFound
from infra.elasticsearch_search import ElasticsearchSearchStore
from infra.postgres_readmodels import PostgresReadModelStore
from infra.postgres_search import PostgresSearchStore
from infra.projector import ProjectionRunner, apply_event, apply_with_dead_letters
from infra.redis_cache import RowCache, TouchRecorder, WrittenRows
from projections.base import Projection
from projections.operations import DeadLetter, ProjectionStatus, RelayStatus

log = logging.getLogger("taskflow.projector")


class ProjectionWorker(Protocol):
    """What operations need of a runner (log-following or Kafka-fed)."""

    projection: Projection
    store: Any
    cache: RowCache | None

    @property
    def name(self) -> str: ...


class DeadLetterDatabase(Protocol):
    """The read-model SQL database: every projection's dead letters live there."""

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]: ...

    def position(self, projection: str) -> int: ...


@dataclass
class Repair:
    """What a retry or skip did."""

    applied: list[int] = field(default_factory=list)  # positions applied, in order
    failed: int | None = None  # the position that raised again (still dead-lettered)
    error: str | None = None


def store_kind(store: Any) -> str:
    if isinstance(store, ElasticsearchSearchStore):
        return "elasticsearch"
    if isinstance(store, (PostgresReadModelStore, PostgresSearchStore)):
        return "postgres"
    return "sqlite"


ACTIVE_REBUILD = ("running", "swapping")


def state_of(lag: int, open_dead_letters: int, rebuild: dict[str, Any] | None = None) -> str:
    """degraded: some events wait for an operator; rebuilding: a copy is being built beside the
    live read model (which keeps serving); else caught-up or lagging."""
    if open_dead_letters:
        return "degraded"
    if rebuild is not None and rebuild.get("state") in ACTIVE_REBUILD:
        return "rebuilding"
    return "caught-up" if lag == 0 else "lagging"


class ProjectionOperations:
    def __init__(self, workers: Sequence[ProjectionWorker], database: DeadLetterDatabase,
                 recorder: ApplicationRecorder, mapper: Mapper[Any], *, relay_name: str | None = None,
                 latest_rebuild: Callable[[str], dict[str, Any] | None] | None = None):
        self.workers = {w.name: w for w in workers}
        # The latest row of ``projection_rebuilds`` for a projection (infra/rebuild_log.py).
        self.latest_rebuild = latest_rebuild
        self.database = database
        self.recorder = recorder
        self.mapper = mapper
        self.relay_name = relay_name

    def _worker(self, name: str) -> ProjectionWorker:
        worker = self.workers.get(name)
        if worker is None:
            raise NotFound(f"unknown projection {name!r}; known: {', '.join(self.workers)}")
        return worker

    # --- status --------------------------------------------------------------------------------
    def statuses(self) -> list[ProjectionStatus]:
        # Positions before the head, so the lag is never negative.
        applied = {name: w.store.position(name) for name, w in self.workers.items()}
        letters = self.database.dead_letters()
        head = self.head()
        return [
            self._status(w, applied[name], head, [d for d in letters if d.projection == name], self._rebuild(name))
            for name, w in self.workers.items()
        ]

    def status(self, name: str) -> ProjectionStatus:
        worker = self._worker(name)
        applied = worker.store.position(name)
        return self._status(worker, applied, self.head(), self.database.dead_letters(name), self._rebuild(name))

    def _rebuild(self, name: str) -> dict[str, Any] | None:
        return self.latest_rebuild(name) if self.latest_rebuild is not None else None

    @staticmethod
    def _status(worker: ProjectionWorker, applied: int, head: int, letters: list[DeadLetter],
                rebuild: dict[str, Any] | None) -> ProjectionStatus:
        open_letters = sum(1 for d in letters if d.status == "open")
        return ProjectionStatus(
            name=worker.name, store=store_kind(worker.store), cached=worker.cache is not None,
            feed="log" if isinstance(worker, ProjectionRunner) else "kafka",
            applied_position=applied, head_position=head, state=state_of(max(0, head - applied), open_letters, rebuild),
            dead_letters=open_letters, parked_events=sum(1 for d in letters if d.status == "parked"),
            rebuild=rebuild,
        )

    def relay(self) -> RelayStatus | None:
        if self.relay_name is None:
            return None
        position = self.database.position(self.relay_name)
        return RelayStatus(self.relay_name, position, self.head())

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def dead_letters(self, name: str) -> list[DeadLetter]:
        self._worker(name)
        return self.database.dead_letters(name)

    # --- retry and skip ------------------------------------------------------------------------
    def retry(self, name: str, position: int) -> Repair:
        """Apply the dead-lettered event with the current code, then the events parked behind it,
        in order. The first that raises again stays (or becomes) an open dead letter, with the
        rest parked behind it; what was applied before it is kept."""
        return self._repair(name, position, retry=True)

    def skip(self, name: str, position: int) -> Repair:
        """Give up the dead-lettered event (kept, as skipped) and apply the events parked behind it."""
        return self._repair(name, position, retry=False)

    def _repair(self, name: str, position: int, *, retry: bool) -> Repair:
        worker = self._worker(name)
        repair, written, at = apply_with_dead_letters(lambda poisons: self._repair_once(worker, position, retry, poisons))
        if worker.cache is not None and written is not None:
            worker.cache.write_through(name, written, at)
        log.warning("dead letter %s", "retried" if retry else "skipped",
                    extra={"projection": name, "position": position, "applied": repair.applied})
        if repair.failed is not None:
            log.error("event dead-lettered again", extra={"projection": name, "position": repair.failed,
                                                          "error": repair.error})
        return repair

    def _repair_once(self, worker: ProjectionWorker, position: int, retry: bool,
                     poisons: dict[int, str]) -> tuple[Repair, WrittenRows | None, int]:
        name = worker.name
        with worker.store.transaction(name) as store_tx:
            letters = getattr(store_tx, "dead_letters", None)
            letter = letters.get(position) if letters is not None else None
            if letters is None or letter is None:
                raise NotFound(f"projection {name} has no dead letter at position {position}")
            if letter.status == "parked":
                raise Conflict(f"position {position} waits behind the dead letter at {letter.blocked_by}: "
                               "retry or skip that one")
            if letter.status != "open":
                raise Conflict(f"the dead letter at position {position} is already {letter.status}")
            tx = TouchRecorder(store_tx) if worker.cache is not None else store_tx
            queue = [position] if retry else []
            queue += [parked.position for parked in letters.parked_behind(position)]
            if not retry:
                letters.resolve(position, "skipped")
            repair = Repair()
            for n in self._events(queue):
                if n.id in poisons:
                    letters.record_failure(n.id, str(n.originator_id), n.topic, poisons[n.id])
                    letters.move_parked(behind=position, after=n.id, to=n.id)
                    repair.failed, repair.error = n.id, poisons[n.id]
                    break
                apply_event(worker.projection, self.mapper, n, tx)
                letters.resolve(n.id, "retried")
                repair.applied.append(n.id)
            written = tx.final_rows() if isinstance(tx, TouchRecorder) else None
            at = store_tx.position
        return repair, written, at

    def _events(self, positions: list[int]) -> list[Notification]:
        events = []
        for position in positions:
            found = self.recorder.select_notifications(start=position, limit=1)
            if not found or found[0].id != position:
                raise NotFound(f"no event at position {position} in the event store")
            events.append(found[0])
        return events
