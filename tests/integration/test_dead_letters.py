"""Poison events (DESIGN.md: "recorded (dead-letter), the projection reports it, and an operator
can retry or skip it"), on SQLite and on PostgreSQL + Redis + Elasticsearch: the projection goes on
without the event, parks its aggregate's later events, reports it, and a retry after the fix ends
in exactly the read model a clean rebuild gives; a crash neither loses nor duplicates a dead letter."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest

from commands.models import CreateProject, CreateTask, RegisterUser, UpdateTask
from domain.errors import Conflict, NotFound
from projections.search import SearchQuery
from projections.tasks import TASKS
from tests.integration.history import ctx, generate_history
from tests.integration.poison import RaisesOn, at_positions, pick_poison
from tests.integration.test_projections import catch_up, dump, reference

ROOT = Path(__file__).resolve().parents[2]


def runner_of(system, name):
    return next(r for r in system.projector.runners if r.name == name)


def poisoned(system, name, *positions):
    """The runner of projection ``name``, its handlers raising on ``positions`` until fixed."""
    runner = runner_of(system, name)
    runner.projection = RaisesOn(runner.projection, at_positions(*positions))
    return runner


def summary(system, name):
    return [(d.position, d.status, d.blocked_by, d.attempts) for d in system.operations.dead_letters(name)]


def without(rows, aggregate_id):
    return [r for r in rows if r["id"] != aggregate_id]


def test_a_poison_event_is_dead_lettered_the_projection_goes_on_and_a_retry_after_the_fix_completes_it(
    system, settings, tmp_path, caplog
):
    head = generate_history(system.app)
    poison = pick_poison(system.app.recorder, runner_of(system, "tasks").projection.topics)
    runner = poisoned(system, "tasks", poison.position)
    with caplog.at_level(logging.ERROR, logger="taskflow.projector"):
        catch_up(system)
    logged = [(r.levelno, r.projection, r.position) for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert logged == [(logging.ERROR, "tasks", poison.position)]
    assert "handler bug" in next(r.error for r in caplog.records if "dead-lettered" in r.getMessage())

    # The projection went on to the head; the event is recorded with its error; the aggregate's
    # later events wait behind it.
    assert system.store.position("tasks") == head
    assert summary(system, "tasks") == [(poison.position, "open", None, 1)] + [
        (q, "parked", poison.position, 0) for q in poison.later
    ]
    dead = system.operations.dead_letters("tasks")[0]
    assert dead.aggregate_id == poison.aggregate_id
    assert dead.event_type.startswith("domain.task:Task.")
    assert "PoisonedBy: handler bug on the event at position" in (dead.error or "")
    assert dead.first_failed_at.endswith("Z") and dead.last_failed_at >= dead.first_failed_at

    # Every other aggregate was applied; the poisoned task stopped before the event.
    expected = reference(system, tmp_path / "ref.db")
    built = dump(system.store)
    assert without(built["tasks"], poison.aggregate_id) == without(expected["tasks"], poison.aggregate_id)
    assert {k: v for k, v in built.items() if k != "tasks"} == {k: v for k, v in expected.items() if k != "tasks"}
    stuck = system.store.get(TASKS, {"id": poison.aggregate_id})
    assert stuck["position"] < poison.position

    # A new event of that task is parked too, never applied ahead of the dead letter.
    creator = UUID(stuck["created_by"])
    renamed = system.app.execute(system.app.update_task(UUID(poison.aggregate_id), UpdateTask(title="Renamed later"), ctx(creator, 999)))
    catch_up(system)
    later = [*poison.later, renamed.position]
    assert [p for p, status, _, _ in summary(system, "tasks") if status == "parked"] == later
    assert system.store.get(TASKS, {"id": poison.aggregate_id}) == stuck

    status = system.operations.status("tasks")
    assert (status.state, status.dead_letters, status.parked_events, status.lag) == ("degraded", 1, len(later), 0)
    assert status.store == ("postgres" if settings.database_url else "sqlite")
    assert status.cached == bool(settings.redis_url)

    # Retried before the fix: it fails again, nothing moves, the attempt is counted.
    repair = system.operations.retry("tasks", poison.position)
    assert (repair.applied, repair.failed) == ([], poison.position)
    assert summary(system, "tasks") == [(poison.position, "open", None, 2)] + [
        (q, "parked", poison.position, 0) for q in later
    ]

    # After the fix: the event and the parked ones are applied in order, as a clean rebuild has them.
    runner.projection.fixed = True
    repair = system.operations.retry("tasks", poison.position)
    assert (repair.applied, repair.failed) == ([poison.position, *later], None)
    assert dump(system.store) == reference(system, tmp_path / "ref2.db")
    assert system.reader.get(TASKS, {"id": poison.aggregate_id})["title"] == "Renamed later"  # cache too
    assert summary(system, "tasks") == [(poison.position, "retried", None, 2)] + [
        (q, "retried", None, 0) for q in later
    ]
    assert system.operations.status("tasks").state == "caught-up"
    # The aggregate is no longer held: its next event is applied at once.
    system.app.execute(system.app.update_task(UUID(poison.aggregate_id), UpdateTask(title="Free again"), ctx(creator, 1000)))
    catch_up(system)
    assert system.store.get(TASKS, {"id": poison.aggregate_id})["title"] == "Free again"


def test_skip_keeps_the_event_for_the_record_and_applies_the_parked_ones_up_to_one_that_fails(system, tmp_path):
    generate_history(system.app)
    poison = pick_poison(system.app.recorder, runner_of(system, "tasks").projection.topics, later_events=3)
    also_bad = poison.later[1]
    runner = poisoned(system, "tasks", poison.position, also_bad)
    catch_up(system)
    # Parked behind the first, the second bad event was never tried.
    assert summary(system, "tasks")[2] == (also_bad, "parked", poison.position, 0)

    repair = system.operations.skip("tasks", poison.position)
    assert (repair.applied, repair.failed) == ([poison.later[0]], also_bad)
    assert summary(system, "tasks") == [
        (poison.position, "skipped", None, 1),
        (poison.later[0], "retried", None, 0),
        (also_bad, "open", None, 1),
        *[(q, "parked", also_bad, 0) for q in poison.later[2:]],
    ]
    assert system.operations.status("tasks").state == "degraded"

    runner.projection.fixed = True
    repair = system.operations.retry("tasks", also_bad)
    assert repair.applied == [also_bad, *poison.later[2:]]
    # The skipped event alone is missing: the task reached its last version, every other row is exact.
    expected = reference(system, tmp_path / "ref.db")
    built = dump(system.store)
    assert without(built["tasks"], poison.aggregate_id) == without(expected["tasks"], poison.aggregate_id)
    final = next(r for r in expected["tasks"] if r["id"] == poison.aggregate_id)
    assert system.store.get(TASKS, {"id": poison.aggregate_id})["version"] == final["version"]
    assert system.operations.status("tasks").state == "caught-up"


def test_a_backend_failing_inside_a_handler_dead_letters_nothing_and_the_batch_is_applied_once_it_is_back(system):
    head = generate_history(system.app, tasks=6, changes=30)
    poison = pick_poison(system.app.recorder, runner_of(system, "tasks").projection.topics, later_events=1)
    runner = poisoned(system, "tasks", poison.position)
    runner.projection.error = lambda _position: ConnectionResetError("the database went away")
    for _ in range(3):
        system.projector.run_once()
    assert summary(system, "tasks") == []
    assert system.store.position("tasks") < poison.position
    assert (runner.status.state, runner.status.failing_position) == ("failing", poison.position)

    runner.projection.fixed = True  # the backend is back
    catch_up(system)
    assert system.store.position("tasks") == head and summary(system, "tasks") == []


def test_retry_and_skip_refuse_what_they_cannot_do(system):
    generate_history(system.app, tasks=6, changes=30)
    poison = pick_poison(system.app.recorder, runner_of(system, "tasks").projection.topics, later_events=1)
    poisoned(system, "tasks", poison.position)
    catch_up(system)
    with pytest.raises(NotFound, match="unknown projection 'nope'"):
        system.operations.retry("nope", poison.position)
    with pytest.raises(NotFound, match="no dead letter at position 1"):
        system.operations.skip("tasks", 1)
    with pytest.raises(Conflict, match=f"waits behind the dead letter at {poison.position}"):
        system.operations.retry("tasks", poison.later[0])
    system.operations.skip("tasks", poison.position)
    with pytest.raises(Conflict, match="already skipped"):
        system.operations.retry("tasks", poison.position)
    with pytest.raises(NotFound):
        system.operations.dead_letters("nope")


def a_task_and_its_changes(system):
    """A task created then changed twice, and another task: (created, described, last, other)."""
    owner = system.app.execute(system.app.register_user(RegisterUser(email="searcher@example.com", password="password123",
                                                  name="Searcher"), ctx(None, 1))).aggregate.id
    project = system.app.execute(system.app.create_project(CreateProject(name="Zoo"), ctx(owner, 2))).aggregate.id
    created = system.app.execute(system.app.create_task(project, CreateTask(title="Zebracorn sighting"), ctx(owner, 3)))
    described = system.app.execute(system.app.update_task(created.aggregate.id, UpdateTask(description="striped"), ctx(owner, 4))).position
    last = system.app.execute(system.app.update_task(created.aggregate.id, UpdateTask(title="Zebracorn confirmed"), ctx(owner, 5)))
    other = system.app.execute(system.app.create_task(project, CreateTask(title="Unicorn sighting"), ctx(owner, 6))).position
    return created, described, last, other


def test_a_poison_event_in_the_search_projection_is_dead_lettered_and_retried(system, settings):
    created, described, last, other = a_task_and_its_changes(system)
    task = created.aggregate.id
    runner = poisoned(system, "search", created.position)
    catch_up(system)

    assert system.search.position("search") == other
    assert [(p, s) for p, s, _, _ in summary(system, "search")] == [
        (created.position, "open"), (described, "parked"), (last.position, "parked")]
    assert system.search.search(SearchQuery(text="zebracorn")).total == 0
    assert system.search.search(SearchQuery(text="unicorn")).total == 1  # the projection went on
    status = system.operations.status("search")
    assert (status.store, status.state) == ("elasticsearch" if settings.elasticsearch_url else "sqlite", "degraded")

    runner.projection.fixed = True
    repair = system.operations.retry("search", created.position)
    assert repair.applied == [created.position, described, last.position]
    hits = system.search.search(SearchQuery(text="zebracorn")).hits
    assert [(h.id, h.document["title"], h.document["version"]) for h in hits] == [
        (str(task), "Zebracorn confirmed", last.aggregate.version)]


@pytest.mark.parametrize("crash", ["before_the_dead_letter_commits", "after_the_dead_letter_committed"])
def test_a_crash_neither_loses_nor_duplicates_a_dead_letter(crash, system, settings, tmp_path):
    head = generate_history(system.app)
    topics = runner_of(system, "tasks").projection.topics
    poison = pick_poison(system.app.recorder, topics)
    handled = system.app.recorder.select_notifications(start=1, limit=100_000, topics=topics)
    others = [n.id for n in handled if n.id > poison.position and str(n.originator_id) != poison.aggregate_id]
    if crash == "before_the_dead_letter_commits":
        # One batch holds everything: the child dies re-applying it with the event dead-lettered.
        batch_size, crash_at = 100_000, others[0]
    else:
        batch_size, crash_at = 3, others[12]  # a few batches after the dead letter's
    child = subprocess.run(
        [sys.executable, "-m", "tests.integration.crash_dead_letter", str(settings.data_dir),
         settings.database_url or "", str(poison.position), str(crash_at), str(batch_size)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == -9, child.stderr
    recorded = summary(system, "tasks")
    if crash == "before_the_dead_letter_commits":
        assert recorded == [] and system.store.position("tasks") < poison.position
    else:
        assert recorded[0] == (poison.position, "open", None, 1)
        assert poison.position < system.store.position("tasks") < crash_at

    runner = poisoned(system, "tasks", poison.position)  # the bug is still there after the restart
    catch_up(system)
    assert system.store.position("tasks") == head
    assert summary(system, "tasks") == [(poison.position, "open", None, 1)] + [
        (q, "parked", poison.position, 0) for q in poison.later
    ]
    runner.projection.fixed = True
    system.operations.retry("tasks", poison.position)
    assert dump(system.store) == reference(system, tmp_path / "ref.db")


def test_elasticsearch_a_crash_between_recording_a_dead_letter_and_the_position_records_it_once(system, settings):
    if not settings.elasticsearch_url:
        pytest.skip("only Elasticsearch keeps its position outside the dead letters' transaction")
    created, described, last, other = a_task_and_its_changes(system)
    poisoned(system, "search", created.position)
    es = system.search.es

    bulk = es.bulk

    def killed(*, operations: list[dict], **options: object) -> object:
        # The process dies after the SQL commit, before the position: the tracking documents go in
        # a bulk request of their own, after the documents'.
        if any(str(op.get("index", {}).get("_id", "")).startswith("tracking.") for op in operations):
            raise ConnectionResetError("killed before the position was recorded")
        return bulk(operations=operations, **options)

    es.bulk = killed
    system.projector.run_once()
    parked = [(described, "parked", created.position, 0), (last.position, "parked", created.position, 0)]
    assert summary(system, "search") == [(created.position, "open", None, 1), *parked]
    assert system.search.position("search") < created.position

    del es.bulk  # restarted
    catch_up(system)
    assert system.search.position("search") == other
    # The batch was applied again and met the dead letters again: recorded once, as they were.
    assert summary(system, "search") == [(created.position, "open", None, 1), *parked]
