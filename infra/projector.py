"""Runs projections: follows the event store's notification log and applies each projection's
handlers, committing its rows and its new position together.

eventsourcing 9.5's SQLite recorder cannot ``subscribe``, so the embedded projector polls the log,
and the application wakes it after every save so reads catch up in milliseconds, not a poll period.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Mapper

from infra.redis_cache import RowCache, TouchRecorder
from projections.base import Projection
from projections.store import ReadModelStore

log = logging.getLogger("taskflow.projector")


@dataclass
class RunnerState:
    state: str = "starting"  # starting | running | failing | stopped
    last_error: str | None = None
    failing_position: int | None = None
    applied_events: int = 0


def prepare_store(projection: Projection, store: ReadModelStore, cache: RowCache | None) -> None:
    """Before a projection is applied (from the log or from Kafka): its tables exist at its
    version, and the row cache is not ahead of or behind what the store has committed."""
    store.ensure_tables(projection.name, projection.version, projection.tables)
    if cache is not None:
        cache.realign(projection.name, projection.tables, store.position(projection.name))


class ProjectionRunner:
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
        prepare_store(projection, store, cache)

    @property
    def name(self) -> str:
        return self.projection.name

    def step(self) -> int:
        """Apply one batch; returns how far the position moved (0 when caught up)."""
        head = self.recorder.max_notification_id() or 0
        with self.store.transaction(self.name) as store_tx:
            start = store_tx.position
            if head <= start:
                return 0
            tx = TouchRecorder(store_tx) if self.cache is not None else store_tx
            notifications = self.recorder.select_notifications(
                start=start,
                limit=self.batch_size,
                stop=head,
                topics=self.projection.topics,
                inclusive_of_start=False,
            )
            for n in notifications:
                try:
                    self.projection.process(self.mapper.to_domain_event(n), tx, n.id)
                except Exception as error:
                    self.status.failing_position = n.id
                    raise ProjectionFailed(self.name, n.id, error) from error
            # Fewer than a batch means nothing else of interest up to ``head``: jump there, so a
            # reader waiting for a position this projection does not handle is not kept waiting.
            new_position = notifications[-1].id if len(notifications) == self.batch_size else head
            tx.advance(new_position)
            written = tx.final_rows() if isinstance(tx, TouchRecorder) else []
        if self.cache is not None:
            self.cache.write_through(self.name, written, new_position)
        self.status.applied_events += len(notifications)
        self.status.state, self.status.last_error, self.status.failing_position = "running", None, None
        return new_position - start

    def catch_up(self) -> None:
        while self.step():
            pass


class ProjectionFailed(Exception):
    def __init__(self, projection: str, position: int, error: Exception):
        super().__init__(f"projection {projection} failed at position {position}: {error!r}")
        self.projection = projection
        self.position = position


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
