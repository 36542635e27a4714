"""Time travel: a task, a project or a project's board as it stood at an instant (``asOf``) or
after a version, rebuilt from the event store (the source of truth, API.md).

The events are replayed through the live projections' own handlers into a private scratch store
(an empty in-memory read-model database), and the routes then read it with the same code they
use on today's read model: the past has exactly the shape and the list rules of the present.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from domain.clock import iso_utc, parse_iso_utc
from domain.errors import FieldProblem, InvalidInput, NotFound
from domain.identity import Principal
from domain.project import Project
from domain.task import Task
from projections.base import Projection
from projections.projects import PROJECTS, ProjectsProjection
from projections.store import ReadModelReader, Row
from projections.tasks import TASKS, TasksProjection
from read_api.access import may_read_past_of
from read_api.deps import ReadServices
from read_api.query import is_whole_number

Event = tuple[int, Any]  # (event-store position, domain event)

# Strings, checked by ``point_in_time``, so a bad value gets the same error as everywhere else.
AsOf = Annotated[str | None, Query(description="An ISO-8601 instant: the state as it stood then, rebuilt "
                                   "from the event store.")]
Version = Annotated[str | None, Query(description="A version (1 = as created): the state after that "
                                      "event, rebuilt from the event store. Not with asOf.")]


@dataclass(frozen=True)
class PointInTime:
    """Where to stop replaying: at an instant (events that occurred at or before it) or after a
    version of one aggregate."""

    as_of: datetime | None = None
    version: int | None = None

    def includes(self, event: Any) -> bool:
        if self.version is not None:
            return event.originator_version <= self.version
        assert self.as_of is not None
        return event.timestamp <= self.as_of

    def describe(self) -> str:
        return f"version {self.version}" if self.version is not None else f"{iso_utc(self.as_of)}"


def point_in_time(as_of: str | None, version: str | None) -> PointInTime | None:
    """The ``asOf`` / ``version`` query parameters, checked; None when neither is given."""
    if as_of is None and version is None:
        return None
    if as_of is not None and version is not None:
        message = "give asOf or version, not both"
        raise InvalidInput(message, [FieldProblem("asOf", message), FieldProblem("version", message)])
    if as_of is not None:
        try:
            moment = parse_iso_utc(as_of).astimezone(timezone.utc)
        except (ValueError, OverflowError):
            raise InvalidInput.on("asOf", "asOf must be an ISO-8601 instant, e.g. 2026-01-31T12:00:00Z") from None
        return PointInTime(as_of=moment)
    assert version is not None
    digits = version.lstrip("0")
    if not is_whole_number(version) or not digits:
        raise InvalidInput.on("version", "version must be a whole number of at least 1")
    # A longer number is beyond any aggregate's version anyway; this never converts 10,000 digits.
    return PointInTime(version=int(digits) if len(digits) <= 18 else sys.maxsize)


def up_to(events: Sequence[Event], point: PointInTime) -> list[Event]:
    """Each aggregate's events up to the point: a prefix of its history in version order (an
    event whose clock reading went backwards does not let a later one slip in)."""
    stopped: set[UUID] = set()
    kept: list[Event] = []
    for position, event in events:
        if event.originator_id in stopped:
            continue
        if point.includes(event):
            kept.append((position, event))
        else:
            stopped.add(event.originator_id)
    return kept


@dataclass
class Past:
    """A scratch read-model store holding the replayed state, and what the response's ``meta``
    says about it."""

    store: ReadModelReader
    meta: dict[str, Any]


@contextmanager
def _replayed(services: ReadServices, batches: Sequence[tuple[Projection, Sequence[Event]]]) -> Iterator[ReadModelReader]:
    if services.scratch_store is None:
        raise RuntimeError("time travel needs ReadServices.scratch_store (set by the composition root)")
    store = services.scratch_store()
    try:
        for projection, events in batches:
            store.ensure_tables(projection.name, projection.version, projection.tables)
            with store.transaction(projection.name) as tx:
                for position, event in events:
                    projection.process(event, tx, position)
        yield store
    finally:
        store.close()


def _history_of(services: ReadServices, aggregate_id: UUID, created: type, noun: str) -> Sequence[Event]:
    events = services.history.events_of(aggregate_id)
    if not events or not isinstance(events[0][1], created):
        raise NotFound(f"{noun} not found")
    return events


def _up_to_existing(events: Sequence[Event], point: PointInTime, noun: str) -> list[Event]:
    if point.version is not None and point.version > len(events):
        raise NotFound(f"the {noun} has no version {point.version} (its current version is {len(events)})")
    included = up_to(events, point)
    if not included:
        raise NotFound(f"the {noun} did not exist at {point.describe()}")
    return included


def _meta(point: PointInTime, included: Sequence[Event], **more: Any) -> dict[str, Any]:
    """``position``: of the last event replayed; ``asOf``: the instant asked for (else null)."""
    return {
        "historical": True,
        "asOf": iso_utc(point.as_of),
        **more,
        "position": max(position for position, _ in included),
    }


def live_row(row: Row | None, point: PointInTime, noun: str) -> Row:
    """The replayed row, unless the resource was deleted by then (404, as today's route says)."""
    if row is None or row["deleted"]:
        raise NotFound(f"the {noun} was deleted at {point.describe()}")
    return row


@contextmanager
def task_at(services: ReadServices, task_id: UUID, point: PointInTime, principal: Principal) -> Iterator[Past]:
    events = _history_of(services, task_id, Task.Created, "task")
    may_read_past_of(services.store, str(events[0][1].project_id), principal, "task")
    included = _up_to_existing(events, point, "task")
    with _replayed(services, [(TasksProjection(), included)]) as store:
        yield Past(store, _meta(point, included, version=included[-1][1].originator_version))


@contextmanager
def project_at(services: ReadServices, project_id: UUID, point: PointInTime, principal: Principal) -> Iterator[Past]:
    events = _history_of(services, project_id, Project.Created, "project")
    may_read_past_of(services.store, str(project_id), principal, "project")
    included = _up_to_existing(events, point, "project")
    with _replayed(services, [(ProjectsProjection(), included)]) as store:
        yield Past(store, _meta(point, included, version=included[-1][1].originator_version))


def task_ids_ever_in(services: ReadServices, project_id: UUID) -> set[UUID]:
    """Every task ever created in the project. The tasks read model keeps a deleted task's row
    (flagged ``deleted``) and a task never changes project, so its rows name every task up to the
    position it has applied; tasks created after that position come from the event store's tail."""
    applied = services.store.position(TasksProjection.name)  # read first: the rows then cover it
    ids = {UUID(row["id"]) for row in services.store.find(TASKS, {"project_id": str(project_id)})}
    for _, created in services.history.events_after(applied, [Task.Created]):
        if created.project_id == project_id:
            ids.add(created.originator_id)
    return ids


@contextmanager
def board_at(services: ReadServices, project_id: UUID, point: PointInTime, principal: Principal) -> Iterator[Past]:
    """The project and its tasks (including ones deleted since) as they stood at ``point``."""
    assert point.as_of is not None, "a board has no single version: only asOf applies"
    events = _history_of(services, project_id, Project.Created, "project")
    may_read_past_of(services.store, str(project_id), principal, "project")
    project_events = _up_to_existing(events, point, "project")
    task_events = up_to(services.history.events_of_each(task_ids_ever_in(services, project_id)), point)
    batches = [(ProjectsProjection(), project_events), (TasksProjection(), task_events)]
    with _replayed(services, batches) as store:
        live_row(store.get(PROJECTS, {"id": str(project_id)}), point, "project")
        yield Past(store, _meta(point, [*project_events, *task_events]))
