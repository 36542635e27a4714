"""Edge cases of the metric definitions (docs/api.md, Analytics), against hand-computed figures:
moving between two done statuses keeps the completion; cancelling a task takes it (and its
points) out of the burndown scope, un-cancelling puts it back."""

from __future__ import annotations

from datetime import date

from commands.context import CommandContext
from commands.models import ChangeWorkflow, CreateProject, CreateTask, RegisterUser, UpdateTask
from projections.analytics import reports
from tests.analytics_history import event_clock


def catch_up(system) -> None:
    while system.projector.run_once():
        pass


def test_done_to_done_keeps_the_completion_and_cancelling_leaves_the_scope_until_undone(system):
    ctx = CommandContext(actor_id=None, request_id="r", correlation_id="r", causation_id="r")
    owner = system.app.execute(system.app.register_user(RegisterUser(email="o@example.com", password="password123", name="O"), ctx)).aggregate.id
    ctx = CommandContext(actor_id=owner, request_id="r", correlation_id="r", causation_id="r")
    app = system.app
    with event_clock() as clock:
        clock.at("03-01", "09:00")
        project = app.execute(app.create_project(CreateProject(name="Edges"), ctx)).aggregate.id
        statuses = [{"name": "todo", "category": "todo"}, {"name": "doing", "category": "in_progress"},
                    {"name": "done", "category": "done"}, {"name": "shipped", "category": "done"},
                    {"name": "dropped", "category": "cancelled"}]
        app.execute(app.change_workflow(project, ChangeWorkflow.model_validate({"statuses": statuses}), ctx))
        clock.at("03-02", "09:00")
        x = app.execute(app.create_task(project, CreateTask(title="X", estimate=1), ctx)).aggregate.id
        clock.at("03-02", "10:00")
        app.execute(app.update_task(x, UpdateTask(status="doing"), ctx))
        clock.at("03-02", "11:00")
        y = app.execute(app.create_task(project, CreateTask(title="Y", estimate=4), ctx)).aggregate.id
        clock.at("03-03", "10:00")
        app.execute(app.update_task(x, UpdateTask(status="done"), ctx))
        clock.at("03-04", "09:00")
        app.execute(app.update_task(y, UpdateTask(status="dropped"), ctx))
        clock.at("03-05", "09:00")
        app.execute(app.update_task(y, UpdateTask(status="todo"), ctx))
        clock.at("03-10", "10:00")
        app.execute(app.update_task(x, UpdateTask(status="shipped"), ctx))
    catch_up(system)
    project_id = str(project)

    weeks = reports.throughput(system.store, project_id, reports.Span(date(2026, 3, 2), date(2026, 3, 10)))
    assert [(w.week, w.completed) for w in weeks] == [("2026-W10", 1), ("2026-W11", 0)]
    cycle = reports.cycle_time(system.store, project_id, reports.Span(date(2026, 3, 2), date(2026, 3, 15)))
    assert (cycle.count, cycle.hours["p50"]) == (1, 24.0)  # 03-02 10:00 -> 03-03 10:00

    days = reports.burndown(system.store, project_id, reports.Span(date(2026, 3, 2), date(2026, 3, 5)))
    as_rows = [(d.day.isoformat(), d.scope, d.remaining, d.done, d.scope_added, d.scope_removed, d.completed,
                d.scope_points, d.remaining_points, d.points_added, d.points_removed) for d in days]
    assert as_rows == [
        ("2026-03-02", 2, 2, 0, 2, 0, 0, 5.0, 5.0, 5.0, 0.0),
        ("2026-03-03", 2, 1, 1, 0, 0, 1, 5.0, 4.0, 0.0, 0.0),
        ("2026-03-04", 1, 0, 1, 0, 1, 0, 1.0, 0.0, 0.0, 4.0),  # Y dropped (cancelled)
        ("2026-03-05", 2, 1, 1, 1, 0, 0, 5.0, 4.0, 4.0, 0.0),  # Y back to todo
    ]
