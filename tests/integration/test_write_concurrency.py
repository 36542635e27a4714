"""Concurrent writers on one aggregate: without If-Match every command lands (retried on the
fresh state, nothing lost); with If-Match the loser gets a version mismatch, never a lost update."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from commands.models import CreateProject, CreateTask, RegisterUser, UpdateTask
from domain.errors import VersionMismatch
from tests.integration.history import ctx


@pytest.fixture
def task(system):
    owner = system.app.execute(system.app.register_user(
        RegisterUser(email="race@example.com", password="password123", name="Racer"), ctx(None, 0)
    )).aggregate.id
    project = system.app.execute(system.app.create_project(CreateProject(name="Race"), ctx(owner, 1))).aggregate
    created = system.app.execute(system.app.create_task(project.id, CreateTask(title="Contended"), ctx(owner, 2))).aggregate
    return owner, created


def race(workers: list) -> list:
    barrier = threading.Barrier(len(workers))
    outcomes: list = [None] * len(workers)

    def run(i: int, work) -> None:
        barrier.wait()
        try:
            outcomes[i] = work()
        except Exception as error:  # collected and asserted on below
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_racing_writers_without_if_match_all_land_and_nothing_is_lost(system, task):
    owner, created = task
    changes = [
        {"title": "New title"}, {"description": "Described"}, {"priority": "urgent"}, {"status": "in_review"},
        {"estimate": 5.0}, {"due_date": "2026-12-31"}, {"start_date": "2026-12-01"}, {"labels": ["raced"]},
    ]
    outcomes = race([
        lambda change=change: system.app.execute(system.app.update_task(created.id, UpdateTask(**change), ctx(owner, 3)))
        for change in changes
    ])
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    final = system.app.load(created.id, type(created), "task")
    assert final.version == 1 + len(changes)
    assert (final.title, final.description, final.priority, final.status) == ("New title", "Described", "urgent", "in_review")
    assert (final.estimate, final.due_date, final.start_date, final.labels) == (5.0, "2026-12-31", "2026-12-01", ["raced"])


def test_racing_writers_with_the_same_if_match_get_exactly_one_success(system, task):
    owner, created = task
    conditional = replace(ctx(owner, 4), expected_version=created.version)
    outcomes = race([
        lambda: system.app.execute(system.app.update_task(created.id, UpdateTask(title="Mine"), conditional)),
        lambda: system.app.execute(system.app.update_task(created.id, UpdateTask(title="No, mine"), conditional)),
        lambda: system.app.execute(system.app.update_task(created.id, UpdateTask(title="Ours"), conditional)),
    ])
    successes = [o for o in outcomes if not isinstance(o, Exception)]
    refusals = [o for o in outcomes if isinstance(o, VersionMismatch)]
    assert len(successes) == 1 and len(refusals) == 2, outcomes
    final = system.app.load(created.id, type(created), "task")
    assert final.version == 2 and final.title == successes[0].aggregate.title
