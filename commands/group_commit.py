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

import asyncio
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
    """The aggregates a batch has loaded or created, shared by its commands in order.

    Nothing is copied on the usual path (the copies cost more than deciding a command): a failed
    command is undone only on the aggregates whose version it moved, by rebuilding them from the
    version the batch loaded plus the events of the batch's earlier commands; a command's target is
    copied only when a later command of the batch touches it (its response shows it as it was)."""

    def __init__(self, load: Callable[..., Any]) -> None:
        self._load = load  # the repository's get(aggregate_id, version=None)
        self.aggregates: dict[UUID, Any] = {}
        self._loaded_version: dict[UUID, int | None] = {}  # None: created in this batch
        self._kept_events: dict[UUID, list[Any]] = {}
        self._version_before: dict[UUID, int] = {}  # aggregates the current command touched
        self._new_in_command: set[UUID] = set()
        self._before_next_touch: dict[UUID, Callable[[], None]] = {}

    def get(self, aggregate_id: UUID) -> Any:
        if aggregate_id in self.aggregates:
            aggregate = self.aggregates[aggregate_id]
            if aggregate_id not in self._new_in_command:
                self._version_before.setdefault(aggregate_id, aggregate.version)
            hook = self._before_next_touch.pop(aggregate_id, None)
            if hook is not None:
                hook()
            return aggregate
        aggregate = self._load(aggregate_id)
        self.aggregates[aggregate_id] = aggregate
        self._loaded_version[aggregate_id] = aggregate.version
        self._new_in_command.add(aggregate_id)
        return aggregate

    def knows(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.aggregates

    def before_next_touch(self, aggregate_id: UUID, hook: Callable[[], None]) -> None:
        """Call ``hook`` before a later command of the batch gets this aggregate."""
        if aggregate_id in self.aggregates:
            self._before_next_touch[aggregate_id] = hook

    def keep(self, changed: Sequence[Any], events: Sequence[Any]) -> None:
        """A command succeeded: what it created or changed is visible to the next ones."""
        for aggregate in changed:
            if aggregate.id not in self.aggregates:
                self.aggregates[aggregate.id] = aggregate
                self._loaded_version[aggregate.id] = None
        for event in events:
            self._kept_events.setdefault(event.originator_id, []).append(event)
        self._version_before.clear()
        self._new_in_command.clear()

    def discard(self) -> None:
        """A command failed: put back what it changed, forget what it loaded."""
        for aggregate_id, version in self._version_before.items():
            if self.aggregates[aggregate_id].version != version:
                self.aggregates[aggregate_id] = self._rebuild(aggregate_id)
        for aggregate_id in self._new_in_command:
            self.aggregates.pop(aggregate_id, None)
            self._loaded_version.pop(aggregate_id, None)
        self._version_before.clear()
        self._new_in_command.clear()

    def _rebuild(self, aggregate_id: UUID) -> Any:
        version = self._loaded_version[aggregate_id]
        aggregate = None if version is None else self._load(aggregate_id, version=version)
        for event in self._kept_events.get(aggregate_id, ()):
            aggregate = event.mutate(aggregate)
        return aggregate


@dataclass
class Job:
    ctx: CommandContext
    decide: Decide
    future: Future = field(default_factory=Future)


@dataclass
class Decided:
    """A command of the batch that succeeded: its target and its slice of the batch's events."""

    job: Job
    target: Any
    start: int
    end: int

    def freeze(self) -> None:
        """Keep the target as this command left it (a later command of the batch is about to touch it)."""
        self.target = copy.deepcopy(self.target)


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
        """Run a command in the next batch and wait for its outcome (blocks this thread)."""
        job = Job(ctx, decide)
        self._queue.put(job)
        return job.future.result()

    async def submit_async(self, ctx: CommandContext, decide: Decide) -> Any:
        """The same, awaited on an event loop: no thread is parked per waiting command, so an
        async route hands its command straight from the event loop to the writer."""
        job = Job(ctx, decide)
        self._queue.put(job)
        return await asyncio.wrap_future(job.future)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs: list[Job] = []
            while True:
                # A job whose caller gave up before the batch began (its awaiting task was
                # cancelled) is not run; one taken can no longer be cancelled, so its outcome is
                # always delivered.
                if job.future.set_running_or_notify_cancel():
                    jobs.append(job)
                if len(jobs) >= self.max_batch:
                    break
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)
                    break
            if not jobs:
                continue
            try:
                self._commit(jobs)
            except BaseException as error:  # never leave a caller waiting
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)

    def _commit(self, jobs: list[Job]) -> None:
        from commands.service import Written  # the service module imports this one

        uow = UnitOfWork(self.app.repository.get)
        decided: list[Decided] = []
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
                uow.keep(changed, job_events)
                outcome = Decided(job, target, len(events), len(events) + len(job_events))
                if hasattr(target, "id"):
                    uow.before_next_touch(target.id, outcome.freeze)
                decided.append(outcome)
                events.extend(job_events)
        finally:
            self._local.uow = None
        if not events:
            head = self.app.head_position() if decided else 0
            for d in decided:
                d.job.future.set_result(Written(d.target, head, d.target.version))
            return
        try:
            recordings = self.app.save(*events)
        except self.app.conflict_errors:
            # Someone outside this batch wrote to one of its aggregates: run each command alone.
            for d in decided:
                try:
                    d.job.future.set_result(self.app.execute_alone(d.job.ctx, d.job.decide))
                except Exception as error:
                    d.job.future.set_exception(error)
            return
        except Exception as error:
            for d in decided:
                d.job.future.set_exception(error)
            return
        head = recordings[-1].notification.id
        for d in decided:
            position = recordings[d.end - 1].notification.id if d.end > d.start else head
            d.job.future.set_result(Written(d.target, position, d.target.version))
