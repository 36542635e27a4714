"""Group commit: commands queued together are decided in order by one writer and appended in one
transaction, with every guarantee of a command committed alone. The writer is held on a gate so
the commands under test are sure to form one batch."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import pytest

from commands.models import CreateProject, CreateTask, RegisterUser, UpdateTask
from domain.errors import Conflict, InvalidInput, VersionMismatch
from domain.task import Task
from tests.integration.history import ctx


@pytest.fixture
def owner_and_project(system):
    assert system.app.group_committer is not None, "group commit is on by default"
    owner = system.app.execute(system.app.register_user(
        RegisterUser(email="batch@example.com", password="password123", name="Batch"), ctx(None, 0)
    )).aggregate.id
    project = system.app.execute(system.app.create_project(CreateProject(name="Batched"), ctx(owner, 1))).aggregate
    return owner, project


def hold_the_writer(system) -> tuple[threading.Event, threading.Thread]:
    """Keep the writer inside a decide until the returned gate is set."""
    gate = threading.Event()

    def hold():
        gate.wait(10)
        return _Nothing(), []

    holder = threading.Thread(target=lambda: system.app.group_committer.submit(ctx(None, -1), hold))
    holder.start()
    time.sleep(0.05)  # the writer is now inside the holder's decide
    return gate, holder


def wait_until_queued(system, n: int) -> None:
    queue = system.app.group_committer._queue  # the writer's queue: peeked to make the order certain
    deadline = time.monotonic() + 10
    while queue.qsize() < n and time.monotonic() < deadline:
        time.sleep(0.001)


def in_one_batch(system, commands):
    """Run ``commands`` (callables) concurrently while the writer is held, so they batch."""
    gate, holder = hold_the_writer(system)
    outcomes: list = [None] * len(commands)

    def run(i, command):
        try:
            outcomes[i] = command()
        except Exception as error:  # asserted on by the tests
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(commands)]
    for queued, t in enumerate(threads, start=1):
        t.start()
        # Each command is queued before the next starts, so the batch holds them in list order
        # (started together, a loaded machine may schedule them in any order).
        wait_until_queued(system, queued)
    gate.set()
    for t in threads + [holder]:
        t.join()
    return outcomes


class _Nothing:
    version = 0


def test_queued_commands_commit_together_each_with_its_own_position_and_metadata(system, owner_and_project,
                                                                                 monkeypatch):
    owner, project = owner_and_project
    transactions = []
    save = system.app.save
    monkeypatch.setattr(system.app, "save", lambda *events: transactions.append(len(events)) or save(*events))
    commands = [
        lambda i=i: system.app.execute(system.app.create_task(project.id, CreateTask(title=f"Task {i}"), ctx(owner, 100 + i)))
        for i in range(20)
    ]
    outcomes = in_one_batch(system, commands)
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert transactions == [20]  # one append for the whole batch
    positions = [o.position for o in outcomes]
    assert len(set(positions)) == 20
    for i, written in enumerate(outcomes):
        (position, event), = system.history.events_of(written.aggregate.id)
        assert position == written.position
        assert event.metadata["requestId"] == f"req-{100 + i}"
        assert written.aggregate.title == f"Task {i}"
    # Gap-free: the batch's events occupy consecutive positions.
    assert sorted(positions) == list(range(min(positions), min(positions) + 20))


def test_commands_on_one_aggregate_in_a_batch_apply_in_order_and_see_each_other(system, owner_and_project):
    owner, project = owner_and_project
    task = system.app.execute(system.app.create_task(project.id, CreateTask(title="Shared"), ctx(owner, 2))).aggregate
    commands = [
        lambda: system.app.execute(system.app.update_task(task.id, UpdateTask(title="First"), ctx(owner, 3))),
        lambda: system.app.execute(system.app.update_task(task.id, UpdateTask(priority="urgent"), ctx(owner, 4))),
        # Expects the version before the two above: refused, as it would be alone.
        lambda: system.app.execute(system.app.update_task(task.id, UpdateTask(title="Stale"),
                                       replace(ctx(owner, 5), expected_version=task.version))),
    ]
    first, second, stale = in_one_batch(system, commands)
    assert (first.version, second.version) == (2, 3)
    assert (first.aggregate.title, first.aggregate.priority) == ("First", "medium")  # its own snapshot
    assert (second.aggregate.title, second.aggregate.priority) == ("First", "urgent")
    assert isinstance(stale, VersionMismatch)
    final = system.app.load(task.id, type(task), "task")
    assert (final.version, final.title, final.priority) == (3, "First", "urgent")


def test_a_refused_command_in_a_batch_leaves_no_trace_and_does_not_affect_the_others(system, owner_and_project):
    owner, project = owner_and_project
    task = system.app.execute(system.app.create_task(project.id, CreateTask(title="Shared"), ctx(owner, 2))).aggregate
    commands = [
        lambda: system.app.execute(system.app.update_task(task.id, UpdateTask(title="Kept"), ctx(owner, 3))),
        # Changes the title, then fails on the status: the title change must not survive.
        lambda: system.app.execute(system.app.update_task(task.id, UpdateTask(title="Half", status="nowhere"), ctx(owner, 4))),
        lambda: system.app.execute(system.app.update_task(task.id, UpdateTask(priority="high"), ctx(owner, 5))),
    ]
    kept, refused, after = in_one_batch(system, commands)
    assert isinstance(refused, InvalidInput)
    # Each success answers with the task as its own command left it, not as the batch ended.
    assert (kept.aggregate.title, kept.aggregate.priority, kept.version) == ("Kept", "medium", 2)
    assert (after.aggregate.title, after.aggregate.priority, after.version) == ("Kept", "high", 3)
    final = system.app.load(task.id, type(task), "task")
    assert (final.title, final.priority, final.version) == ("Kept", "high", 3)
    assert [e.originator_version for _, e in system.history.events_of(task.id)] == [1, 2, 3]


def test_two_registrations_of_one_email_in_a_batch_give_one_user_and_one_conflict(system):
    commands = [
        lambda i=i: system.app.execute(system.app.register_user(
            RegisterUser(email="twice@example.com", password="password123", name=f"N{i}"), ctx(None, i)
        ))
        for i in range(2)
    ]
    outcomes = in_one_batch(system, commands)
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "Written"]
    assert any(isinstance(o, Conflict) for o in outcomes)


def test_commands_awaited_on_an_event_loop_batch_and_one_given_up_before_its_batch_never_runs(
        system, owner_and_project):
    owner, project = owner_and_project
    before = system.app.head_position()
    gate, holder = hold_the_writer(system)

    async def scenario():
        app = system.app
        kept = [asyncio.ensure_future(app.execute_async(app.create_task(project.id, CreateTask(title=f"Kept {i}"),
                                                                         ctx(owner, 10 + i)))) for i in range(2)]
        dropped = asyncio.ensure_future(app.execute_async(app.create_task(project.id, CreateTask(title="Dropped"),
                                                                           ctx(owner, 12))))
        await asyncio.sleep(0)  # the three are queued behind the held writer
        await asyncio.to_thread(wait_until_queued, system, 3)
        dropped.cancel()  # its caller gives up (a request cancelled) before the batch begins
        gate.set()
        outcomes = await asyncio.gather(*kept)
        with pytest.raises(asyncio.CancelledError):
            await dropped
        return outcomes

    outcomes = asyncio.run(scenario())
    holder.join()
    assert [o.aggregate.title for o in outcomes] == ["Kept 0", "Kept 1"]
    stored = system.history.events_after(before, [Task.Created])
    assert [event.title for _, event in stored] == ["Kept 0", "Kept 1"]
    assert [position for position, _ in stored] == [o.position for o in outcomes]
