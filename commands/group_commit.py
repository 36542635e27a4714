"""Group commit: commands that arrive together are decided one after another by one writer
thread and appended in ONE transaction.

Why: the event store serialises appends with a table lock, so one transaction per command caps
throughput at a few hundred commands per second whatever the number of threads; one transaction
per batch lifts that cap while keeping every guarantee:
- gap-free order and per-aggregate optimistic concurrency: one insert of all the batch's events;
- commands on the same aggregate are applied in order to one instance (the batch's unit of work),
  so the second sees the first's changes, and If-Match is checked against them;
- a command refused by the domain changes nothing: the aggregates it touched are restored;
- metadata: each command's events carry its own request, correlation and causation ids;
- a conflict with a writer elsewhere (another process) re-runs the batch's commands one by one,
  each with its own retries, so only the commands it concerns are retried in effect.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from commands.context import CommandContext

Decide = Callable[[], tuple[Any, Sequence[Any]]]


class UnitOfWork:
    """The aggregates a batch has loaded or created, shared by its commands in order."""

    def __init__(self) -> None:
        self.aggregates: dict[UUID, Any] = {}
        self._undo: dict[UUID, Any] = {}
        self._new_in_command: set[UUID] = set()

    def get(self, aggregate_id: UUID, load: Callable[[UUID], Any]) -> Any:
        if aggregate_id in self.aggregates:
            if aggregate_id not in self._undo and aggregate_id not in self._new_in_command:
                self._undo[aggregate_id] = copy.deepcopy(self.aggregates[aggregate_id])
            return self.aggregates[aggregate_id]
        aggregate = load(aggregate_id)
        self.aggregates[aggregate_id] = aggregate
        self._new_in_command.add(aggregate_id)
        return aggregate

    def knows(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.aggregates

    def keep(self, changed: Sequence[Any]) -> None:
        """A command succeeded: what it created or changed is visible to the next ones."""
        for aggregate in changed:
            self.aggregates.setdefault(aggregate.id, aggregate)
        self._undo.clear()
        self._new_in_command.clear()

    def discard(self) -> None:
        """A command failed: put back what it changed, forget what it loaded."""
        self.aggregates.update(self._undo)
        for aggregate_id in self._new_in_command:
            self.aggregates.pop(aggregate_id, None)
        self._undo.clear()
        self._new_in_command.clear()


@dataclass
class Job:
    ctx: CommandContext
    decide: Decide
    future: Future = field(default_factory=Future)


class GroupCommitter:
    def __init__(self, app: Any, *, max_batch: int = 200):
        self.app = app
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._local = threading.local()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    @property
    def unit_of_work(self) -> UnitOfWork | None:
        """The batch being decided, when called from the writer thread."""
        return getattr(self._local, "uow", None)

    def submit(self, ctx: CommandContext, decide: Decide) -> Any:
        job = Job(ctx, decide)
        self._queue.put(job)
        return job.future.result()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)
                    break
                jobs.append(job)
            try:
                self._commit(jobs)
            except BaseException as error:  # never leave a caller waiting
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)

    def _commit(self, jobs: list[Job]) -> None:
        from commands.service import Written  # the service module imports this one

        uow = UnitOfWork()
        decided: list[tuple[Job, Any, int, int]] = []  # job, snapshot of its target, event slice
        events: list[Any] = []
        self._local.uow = uow
        try:
            for job in jobs:
                try:
                    target, changed = job.decide()
                    job_events = self.app.collect_stamped(changed, job.ctx)
                except Exception as error:
                    uow.discard()
                    job.future.set_exception(error)
                    continue
                uow.keep(changed)
                decided.append((job, copy.deepcopy(target), len(events), len(events) + len(job_events)))
                events.extend(job_events)
        finally:
            self._local.uow = None
        if not events:
            head = self.app.head_position() if decided else 0
            for job, target, _, _ in decided:
                job.future.set_result(Written(target, head, target.version))
            return
        try:
            recordings = self.app.save(*events)
        except self.app.conflict_errors:
            # Someone outside this batch wrote to one of its aggregates: run each command alone.
            for job, _, _, _ in decided:
                try:
                    job.future.set_result(self.app.execute_alone(job.ctx, job.decide))
                except Exception as error:
                    job.future.set_exception(error)
            return
        except Exception as error:
            for job, _, _, _ in decided:
                job.future.set_exception(error)
            return
        head = recordings[-1].notification.id
        for job, target, start, end in decided:
            position = recordings[end - 1].notification.id if end > start else head
            job.future.set_result(Written(target, position, target.version))
