"""Rebuilding a projection beside the live one, then swapping it in, without downtime.

One implementation behind ``taskflow projections rebuild NAME`` and
``POST /api/v1/admin/projections/{name}/rebuild``:

1. take the projection's rebuild lock (a second rebuild of it is refused) and record the rebuild
   in ``projection_rebuilds`` (infra/rebuild_log.py);
2. drop what earlier rebuilds left, and create the copy (new tables, or a new search index);
3. apply every event from position 0 to the copy, in batches, with the projection's current
   handlers (the same ``ProjectionRunner`` the live projector uses), until close to the head;
4. swap: the store applies the last events and puts the copy in place of the live read model in
   one step (SQL: one transaction holding the live tracking row, infra/sql_rebuild.py;
   Elasticsearch: the alias, infra/elasticsearch_search.py), and the Redis row cache forgets the
   projection's rows.

Until the swap, reads are served by the live tables, which the live projector keeps updating.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Mapper

from domain.errors import Conflict, NotFound
from infra.projector import ProjectionRunner
from infra.rebuild_log import RebuildLog
from infra.redis_cache import RowCache
from projections.base import Projection

log = logging.getLogger("taskflow.rebuild")

# (state, position, head, events per second)
OnProgress = Callable[[str, int, int, float], None]


@dataclass
class RebuildTarget:
    projection: Projection
    # A store offering ``discard_copies`` and ``copy_for_rebuild`` (the SQL and Elasticsearch stores).
    store: Any
    cache: RowCache | None = None


@dataclass
class Rebuild:
    """A rebuild this process runs."""

    projection: str
    generation: int
    state: str = "running"
    position: int = 0
    head: int = 0
    started: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None


class RebuildCancelled(Exception):
    pass


class ProjectionRebuilds:
    def __init__(self, targets: Mapping[str, RebuildTarget], log_store: Any, recorder: ApplicationRecorder,
                 mapper: Mapper[Any], *, batch_size: int = 500):
        self.targets = dict(targets)
        self.log_store = log_store
        self.recorder = recorder
        self.mapper = mapper
        self.batch_size = batch_size
        self.log = RebuildLog(log_store)
        self._running: dict[str, Rebuild] = {}
        self._cancel = threading.Event()

    def names(self) -> list[str]:
        return list(self.targets)

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    # --- entry points ---------------------------------------------------------------------------
    def run(self, name: str, on_progress: OnProgress | None = None) -> int:
        """Rebuild ``name`` in this thread; returns the position the live projection then stands at."""
        with self._claimed(name) as rebuild:
            return self._run(rebuild, on_progress)

    def start(self, name: str) -> Rebuild:
        """Rebuild ``name`` in a background thread of this process; returns it as it starts."""
        stack = ExitStack()
        rebuild = stack.enter_context(self._claimed(name))
        started = replace(rebuild)

        def work() -> None:
            with stack:
                try:
                    self._run(rebuild, None)
                except Exception:  # recorded in projection_rebuilds and logged by _run
                    pass

        rebuild.thread = threading.Thread(target=work, name=f"rebuild-{name}", daemon=True)
        rebuild.thread.start()
        return started

    def stop(self) -> None:
        """Cancel the rebuilds this process runs (before its stores close): their copies are left
        for the next rebuild to drop; the live read models are untouched."""
        self._cancel.set()
        for rebuild in list(self._running.values()):
            if rebuild.thread is not None:
                rebuild.thread.join(timeout=30)

    # --- the rebuild ----------------------------------------------------------------------------
    @contextmanager
    def _claimed(self, name: str) -> Iterator[Rebuild]:
        if name not in self.targets:
            raise NotFound(f"unknown projection {name}; known: {', '.join(self.targets)}")
        with self.log_store.exclusive(f"rebuild-{name}") as mine:
            if not mine or name in self._running:
                raise Conflict(f"a rebuild of {name} is already running")
            rebuild = self._running[name] = Rebuild(name, self.log.begin(name, self.head()))
            try:
                yield rebuild
            finally:
                del self._running[name]

    def _run(self, rebuild: Rebuild, on_progress: OnProgress | None) -> int:
        target = self.targets[rebuild.projection]
        try:
            position = self._rebuild(target, rebuild, on_progress)
        except BaseException as error:
            log.error("projection rebuild failed",
                      extra={"projection": rebuild.projection, "generation": rebuild.generation}, exc_info=error)
            self.log.finish(rebuild.projection, rebuild.generation, repr(error))
            raise
        self.log.finish(rebuild.projection, rebuild.generation)
        log.info("projection rebuilt", extra={"projection": rebuild.projection, "position": position})
        return position

    def _report(self, rebuild: Rebuild, state: str, position: int, on_progress: OnProgress | None) -> None:
        if self._cancel.is_set():
            raise RebuildCancelled(f"rebuild of {rebuild.projection} cancelled: the process is stopping")
        rebuild.state, rebuild.position, rebuild.head = state, position, self.head()
        rate = position / max(time.monotonic() - rebuild.started, 1e-6)
        self.log.progress(rebuild.projection, rebuild.generation, state, position, rebuild.head, rate)
        if on_progress is not None:
            on_progress(state, position, rebuild.head, rate)

    def _rebuild(self, target: RebuildTarget, rebuild: Rebuild, on_progress: OnProgress | None) -> int:
        projection = target.projection
        target.store.discard_copies(projection)
        copy = target.store.copy_for_rebuild(projection, rebuild.generation)
        copy.create()
        runner = self._runner(projection, copy.catch_up_store())
        self._report(rebuild, "running", 0, on_progress)
        while True:
            moved = runner.step()
            position = runner.store.position(projection.name)
            self._report(rebuild, "running", position, on_progress)
            # Close enough: the swap applies the rest while the live projector waits.
            if not moved or rebuild.head - position <= self.batch_size:
                break
        self._report(rebuild, "swapping", position, on_progress)

        def before_commit(at: int) -> None:
            if target.cache is not None:
                target.cache.clear(projection.name)

        def last_events(store: Any) -> None:
            # Up to the head as the swap began (and at most one batch more): a stream of new
            # events must not keep the live projector waiting.
            runner, stop = self._runner(projection, store), self.head()
            while store.position(projection.name) < stop and runner.step():
                pass

        position = copy.swap(last_events, before_commit)
        if target.cache is not None:
            # The swap counts as a commit of the live projection: write-throughs of the commits
            # before it are dropped, if they come late.
            target.cache.realign(projection.name, *target.store.tracking(projection.name))
        rebuild.state, rebuild.position = "done", position
        if on_progress is not None:
            on_progress("done", position, max(position, self.head()), 0.0)
        return position

    def _runner(self, projection: Projection, store: Any) -> ProjectionRunner:
        return ProjectionRunner(projection, store, self.recorder, self.mapper, batch_size=self.batch_size)
