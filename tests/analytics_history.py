"""A project history with known event times, for checking analytics against hand-computed figures.

Event timestamps come from eventsourcing's clock (``eventsourcing.domain.datetime_now_with_tzinfo``,
which ``domain.clock.now`` also reads); ``event_clock`` replaces it for the duration of a block,
so the application writes events "at" the times the scenario says, through its ordinary paths.

The scenario (2026, times UTC; default workflow todo, in_progress, in_review, done, cancelled):

    Mon 03-02  09:00 A created (todo, estimate 3)      10:00 B created (todo, estimate 5)
               11:00 C created straight into done (1)  12:00 A -> in_progress
    Tue 03-03  09:00 D created (todo, no estimate)     10:00 A -> in_review
               11:00 H created (todo, estimate 2)      14:00 B -> in_progress
    Wed 03-04  12:00 A -> done                         15:00 D -> cancelled
    Thu 03-05  09:00 A -> in_progress (re-opened)      10:00 B estimate 5 -> 8
               11:00 E created (todo, estimate 2)      12:00 H -> in_review
    Fri 03-06  09:00 A -> done                         10:00 B -> done
               11:00 E deleted
    Mon 03-09  08:00 workflow: in_review removed, review (in_progress) added; H stays in in_review
               09:00 F created (todo, estimate 2)      10:00 F -> in_progress   16:00 F -> done
    Tue 03-10  09:00 H -> review
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import eventsourcing.domain

from commands.context import CommandContext
from commands.models import ChangeWorkflow, CreateProject, CreateTask, UpdateTask
from commands.service import TaskFlowApplication


class EventClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def at(self, day: str, hhmm: str) -> None:
        self.now = datetime.fromisoformat(f"2026-{day}T{hhmm}:00+00:00")


@contextmanager
def event_clock() -> Iterator[EventClock]:
    clock = EventClock()
    original = eventsourcing.domain.datetime_now_with_tzinfo
    eventsourcing.domain.datetime_now_with_tzinfo = lambda: clock.now
    try:
        yield clock
    finally:
        eventsourcing.domain.datetime_now_with_tzinfo = original


@dataclass
class Scenario:
    project_id: UUID
    tasks: dict[str, UUID] = field(default_factory=dict)
    position: int = 0


def write_scenario(app: TaskFlowApplication, owner_id: UUID) -> Scenario:
    n = 0

    def ctx() -> CommandContext:
        nonlocal n
        n += 1
        return CommandContext(actor_id=owner_id, request_id=f"a-{n}", correlation_id=f"a-{n}", causation_id=f"a-{n}")

    with event_clock() as clock:
        clock.at("03-01", "12:00")
        s = Scenario(app.execute(app.create_project(CreateProject(name="Analytics"), ctx())).aggregate.id)

        def create(name: str, when: tuple[str, str], **fields: Any) -> None:
            clock.at(*when)
            s.tasks[name] = app.execute(app.create_task(s.project_id, CreateTask(title=f"Task {name}", **fields), ctx())).aggregate.id

        def update(name: str, when: tuple[str, str], **fields: Any) -> None:
            clock.at(*when)
            app.execute(app.update_task(s.tasks[name], UpdateTask(**fields), ctx()))

        create("A", ("03-02", "09:00"), estimate=3)
        create("B", ("03-02", "10:00"), estimate=5)
        create("C", ("03-02", "11:00"), estimate=1, status="done")
        update("A", ("03-02", "12:00"), status="in_progress")
        create("D", ("03-03", "09:00"))
        update("A", ("03-03", "10:00"), status="in_review")
        create("H", ("03-03", "11:00"), estimate=2)
        update("B", ("03-03", "14:00"), status="in_progress")
        update("A", ("03-04", "12:00"), status="done")
        update("D", ("03-04", "15:00"), status="cancelled")
        update("A", ("03-05", "09:00"), status="in_progress")
        update("B", ("03-05", "10:00"), estimate=8)
        create("E", ("03-05", "11:00"), estimate=2)
        update("H", ("03-05", "12:00"), status="in_review")
        update("A", ("03-06", "09:00"), status="done")
        update("B", ("03-06", "10:00"), status="done")
        clock.at("03-06", "11:00")
        app.execute(app.delete_task(s.tasks["E"], ctx()))
        clock.at("03-09", "08:00")
        workflow = [{"name": "todo", "category": "todo"}, {"name": "in_progress", "category": "in_progress"},
                    {"name": "review", "category": "in_progress"}, {"name": "done", "category": "done"},
                    {"name": "cancelled", "category": "cancelled"}]
        app.execute(app.change_workflow(s.project_id, ChangeWorkflow.model_validate({"statuses": workflow}), ctx()))
        create("F", ("03-09", "09:00"), estimate=2)
        update("F", ("03-09", "10:00"), status="in_progress")
        update("F", ("03-09", "16:00"), status="done")
        update("H", ("03-10", "09:00"), status="review")
    s.position = app.head_position()
    return s
