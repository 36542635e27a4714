"""Runs projections: follows the event store's notification log and applies each projection's
handlers, committing its rows and its new position together.

eventsourcing 9.5's SQLite recorder cannot ``subscribe``, so the embedded projector polls the log,
and the application wakes it after every save so reads catch up in milliseconds, not a poll period.

A poison event (a handler raises on it, and no backend is down) does not stop a projection: the
batch rolls back and is applied again with that event recorded as a dead letter, and later events
of its aggregate parked behind it, in the same commit as the rows and position (``EventApplier``;
the Kafka consumers use it too). An operator then retries or skips it (infra/projection_ops.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import elastic_transport
import elasticsearch
import psycopg
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification

from infra.dead_letters import DeadLetterLog
from infra.redis_cache import RowCache, TouchRecorder, WrittenRows
from projections.base import Projection
from projections.store import ProjectionTransaction, ReadModelStore

log = logging.getLogger("taskflow.projector")


@dataclass
class RunnerState:
    state: str = "starting"  # starting | running | failing | stopped
    last_error: str | None = None
    failing_position: int | None = None
    applied_events: int = 0


def prepare_store(projection: Projection, store: ReadModelStore, cache: RowCache | None) -> None:
    """Before a projection is applied (from the log or from Kafka): its tables exist at its
    version, and the row cache is not behind what the store has committed."""
    store.ensure_tables(projection.name, projection.version, projection.tables)
    if cache is not None:
        cache.realign(projection.name, *store.tracking(projection.name))


class ProjectionFailed(Exception):
    def __init__(self, projection: str, position: int, error: Exception):
        super().__init__(f"projection {projection} failed at position {position}: {error!r}")
        self.projection = projection
        self.position = position


class PoisonEvent(Exception):
    """A handler raised on this event: its batch is rolled back and applied again with the event
    dead-lettered (see ``apply_with_dead_letters``)."""

    def __init__(self, position: int, error: Exception):
        super().__init__(f"poison event at position {position}: {error!r}")
        self.position = position
        self.message = f"{type(error).__name__}: {error}"


# Failures not to blame on the event: the batch is retried later as it is, nothing is dead-lettered.
# Every PostgreSQL error counts: in pipeline mode an error surfaces at a later statement (or the
# commit), not at the event that caused it. SQLite's errors are raised by the statement itself.
_NOT_THE_EVENT: tuple[type[BaseException], ...] = (
    OSError, psycopg.Error, sqlite3.OperationalError, elastic_transport.TransportError,
)


def is_outage(error: BaseException) -> bool:
    """A backend failed (or cannot say which event made it fail), rather than the handler."""
    if isinstance(error, elasticsearch.ApiError):
        return error.meta.status == 429 or error.meta.status >= 500
    return isinstance(error, _NOT_THE_EVENT)


def apply_event(projection: Projection, mapper: Mapper[Any], n: Notification, tx: ProjectionTransaction,
                *, dead_letters: bool = True) -> None:
    """Apply one event. If its handler fails, PoisonEvent blames the event; ProjectionFailed is
    raised instead when a backend failed, or the store keeps no dead letters (the projection
    then stops at the event, to be retried, as it would without dead letters)."""
    try:
        projection.process(mapper.to_domain_event(n), tx, n.id)
    except Exception as error:
        if not dead_letters or is_outage(error):
            raise ProjectionFailed(projection.name, n.id, error) from error
        raise PoisonEvent(n.id, error) from error


T = TypeVar("T")


def apply_with_dead_letters(attempt: Callable[[dict[int, str]], T]) -> T:
    """Run ``attempt`` (one batch in one transaction), given the poison events met so far
    (position -> error); each time it meets a new one, the batch has rolled back: run it again
    with that event dead-lettered instead of applied. Ends after at most one run per event."""
    poisons: dict[int, str] = {}
    while True:
        try:
            return attempt(poisons)
        except PoisonEvent as poison:
            if poison.position in poisons:  # a handler cannot raise on an event it is not given
                raise
            poisons[poison.position] = poison.message


class EventApplier:
    """Applies a batch's events through one projection transaction, keeping per-aggregate order:
    a known poison event becomes an open dead letter, and every later event of its aggregate (or
    of an aggregate already behind an open dead letter) is parked, not applied."""

    def __init__(self, projection: Projection, mapper: Mapper[Any], letters: DeadLetterLog | None,
                 poisons: dict[int, str]):
        self.projection = projection
        self.mapper = mapper
        self.letters = letters
        self.poisons = poisons
        self.blocked = letters.blocked() if letters is not None else {}
        self.applied = 0
        self.dead_lettered: list[int] = []

    def apply(self, n: Notification, tx: ProjectionTransaction) -> None:
        aggregate_id = str(n.originator_id)
        if self.letters is not None:
            if self.blocked.get(aggregate_id) == n.id:
                return  # dead-lettered already (the batch is applied again after a crash): left as it is
            if aggregate_id in self.blocked:
                self.letters.park(n.id, aggregate_id, n.topic, behind=self.blocked[aggregate_id])
                return
            if n.id in self.poisons:
                self.letters.record_failure(n.id, aggregate_id, n.topic, self.poisons[n.id])
                self.blocked[aggregate_id] = n.id
                self.dead_lettered.append(n.id)
                return
        apply_event(self.projection, self.mapper, n, tx, dead_letters=self.letters is not None)
        self.applied += 1

    def report(self) -> None:
        """Once the batch committed: each dead letter it recorded, at ERROR."""
        for position in self.dead_lettered:
            log.error("event dead-lettered: the projection goes on without it and parks its aggregate's later events",
                      extra={"projection": self.projection.name, "position": position,
                             "error": self.poisons[position]})


@dataclass
class _Batch:
    start: int
    position: int
    written: WrittenRows | None  # with a row cache
    applier: EventApplier


class ProjectionRunner:
    # With a row cache and other workers of the projection: how long another worker's commit may
    # go unwritten-through before this runner, caught up, takes that worker for dead.
    write_through_grace_seconds = 5.0

    def __init__(
        self,
        projection: Projection,
        store: ReadModelStore,
        recorder: ApplicationRecorder,
        mapper: Mapper[Any],
        *,
        batch_size: int = 500,
        cache: RowCache | None = None,
    ):
        self.projection = projection
        self.store = store
        self.recorder = recorder
        self.mapper = mapper
        self.batch_size = batch_size
        self.cache = cache
        self.status = RunnerState()
        self._written_through: int | None = None  # the last commit this runner knows written through
        self._unwritten: tuple[int, float] | None = None  # (commit, since when) not known written through
        prepare_store(projection, store, cache)

    @property
    def name(self) -> str:
        return self.projection.name

    def step(self) -> int:
        """Apply one batch; returns how far the position moved (0 when caught up)."""
        head = self.recorder.max_notification_id() or 0
        try:
            batch = apply_with_dead_letters(lambda poisons: self._apply(head, poisons))
        except ProjectionFailed as error:
            self.status.failing_position = error.position
            raise
        if batch is None:
            return 0
        if self.cache is not None and batch.written is not None:
            self.cache.write_through(self.name, batch.written, batch.position)
            self._written_through = batch.written.commit
        batch.applier.report()
        self.status.applied_events += batch.applier.applied
        self.status.state, self.status.last_error, self.status.failing_position = "running", None, None
        return batch.position - batch.start

    def _apply(self, head: int, poisons: dict[int, str]) -> _Batch | None:
        with self.store.transaction(self.name) as store_tx:
            start = store_tx.position
            if head <= start:
                self._caught_up(start, store_tx)
                return None
            tx = TouchRecorder(store_tx) if self.cache is not None else store_tx
            notifications = self.recorder.select_notifications(
                start=start,
                limit=self.batch_size,
                stop=head,
                topics=self.projection.topics,
                inclusive_of_start=False,
            )
            applier = EventApplier(self.projection, self.mapper, getattr(store_tx, "dead_letters", None), poisons)
            for n in notifications:
                applier.apply(n, tx)
            # Fewer than a batch means nothing else of interest up to ``head``: jump there, so a
            # reader waiting for a position this projection does not handle is not kept waiting.
            new_position = notifications[-1].id if len(notifications) == self.batch_size else head
            tx.advance(new_position)
            written = tx.final_rows() if isinstance(tx, TouchRecorder) else None
        return _Batch(start, new_position, written, applier)

    def _caught_up(self, position: int, tx: Any) -> None:
        """Nothing to apply. With a row cache: a commit of another worker that is still not written
        through after a grace period was never going to be (that worker died in between); realign
        the cache, or reads would report the position before it until the projection's next batch."""
        if self.cache is None or tx.commits == self._written_through:
            return
        now = time.monotonic()
        if self._unwritten is None or self._unwritten[0] != tx.commits:
            self._unwritten = (tx.commits, now)
        if now - self._unwritten[1] >= self.write_through_grace_seconds:
            self.cache.realign(self.name, position, tx.commits)  # under the tracking row's lock
            self._written_through = tx.commits

    def catch_up(self) -> None:
        while self.step():
            pass


class Projector:
    """Runs a set of projection runners in one background thread."""

    def __init__(self, runners: list[ProjectionRunner], *, poll_interval: float = 1.0):
        self.runners = runners
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self, _position: int | None = None) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="projector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for runner in self.runners:
            runner.status.state = "stopped"

    def run_once(self) -> bool:
        """One pass over every projection; True if any of them moved."""
        moved = False
        for runner in self.runners:
            try:
                moved = bool(runner.step()) or moved
            except Exception as error:  # keep the other projections going; report this one
                runner.status.state = "failing"
                runner.status.last_error = repr(error)
                log.error(
                    "projection failed",
                    extra={"projection": runner.name, "position": runner.status.failing_position},
                    exc_info=error,
                )
        return moved

    def _run(self) -> None:
        backoff = self.poll_interval
        while not self._stop.is_set():
            self._wake.clear()
            moved = self.run_once()
            failing = any(r.status.state == "failing" for r in self.runners)
            if moved and not failing:
                continue
            backoff = min(backoff * 2, 30.0) if failing else self.poll_interval
            self._wake.wait(backoff)
