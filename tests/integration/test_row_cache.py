"""The Redis row cache on a real Redis and PostgreSQL: rows served through it are never older
than the position a read reports, across crashes between commit and write-through."""

from __future__ import annotations

import json
import uuid

import pytest

from commands.models import UpdateTask
from domain.task import Task
from infra.composition import build_system
from infra.redis_cache import CachedReader, RowCache
from projections.projects import PROJECT_MEMBERS, PROJECTS
from projections.tasks import TASKS
from tests.conftest import embedded_settings
from tests.integration.history import ctx, generate_history
from tests.services import fresh_postgres_database, service_url


@pytest.fixture
def production(tmp_path):
    with fresh_postgres_database() as url:
        settings = embedded_settings(tmp_path / "data", database_url=url, redis_url=service_url("REDIS_URL"),
                                     redis_prefix=f"test-{uuid.uuid4().hex[:12]}:")
        system = build_system(settings)
        yield system
        system.close()


def catch_up(system) -> None:
    while system.projector.run_once():
        pass


def a_task(system) -> Task:
    row = system.store.find(TASKS, {})[0]
    return system.app.load(uuid.UUID(row["id"]), Task, "task")


def test_cached_rows_equal_the_database_rows_after_catch_up(production):
    generate_history(production.app, tasks=8, changes=20)
    catch_up(production)
    assert isinstance(production.reader, CachedReader)
    for row in production.store.find(TASKS, {}):
        key = {"id": row["id"]}
        assert production.reader.get(TASKS, key) == row  # first read: from the write-through
        assert production.reader.get(TASKS, key) == row
    assert production.reader.position("tasks") == production.store.position("tasks")


def test_a_change_is_visible_through_the_cache_once_its_position_is_reported(production):
    generate_history(production.app, tasks=3, changes=0)
    catch_up(production)
    task = a_task(production)
    production.reader.get(TASKS, {"id": str(task.id)})  # now cached
    written = production.app.execute(production.app.update_task(task.id, UpdateTask(title="Changed"), ctx(task.created_by, 99)))
    catch_up(production)
    assert production.reader.position("tasks") >= written.position
    assert production.reader.get(TASKS, {"id": str(task.id)})["title"] == "Changed"


def test_a_runner_that_died_between_commit_and_write_through_does_not_leave_stale_rows(production, monkeypatch):
    generate_history(production.app, tasks=3, changes=0)
    catch_up(production)
    task = a_task(production)
    assert production.reader.get(TASKS, {"id": str(task.id)})["title"] != "After the crash"
    production.app.execute(production.app.update_task(task.id, UpdateTask(title="After the crash"), ctx(task.created_by, 99)))

    def die(*_args, **_kwargs):
        raise SystemExit("killed after commit, before write-through")

    monkeypatch.setattr(RowCache, "write_through", die)
    tasks_runner = next(r for r in production.projector.runners if r.name == "tasks")
    with pytest.raises(SystemExit):
        tasks_runner.step()
    monkeypatch.undo()
    # The database has the change; the cache still holds the old row but reports the old position.
    assert production.store.get(TASKS, {"id": str(task.id)})["title"] == "After the crash"
    stale_position = production.reader.position("tasks")
    assert stale_position < production.store.position("tasks")

    # A restarted runner realigns the cache before anything else.
    restarted = build_system(production.settings)
    try:
        assert restarted.reader.get(TASKS, {"id": str(task.id)})["title"] == "After the crash"
        assert restarted.reader.position("tasks") == restarted.store.position("tasks")
    finally:
        restarted.close()


def test_a_readers_fill_never_overwrites_a_newer_write_through(production):
    generate_history(production.app, tasks=2, changes=0)
    catch_up(production)
    task = a_task(production)
    key = {"id": str(task.id)}
    old_row = production.store.get(TASKS, key)
    production.app.execute(production.app.update_task(task.id, UpdateTask(title="Newer"), ctx(task.created_by, 99)))
    catch_up(production)  # writes the newer row through
    generation = production.reader.cache.lookup("tasks", TASKS, key).generation
    production.reader.cache.fill("tasks", generation, TASKS, key, old_row)  # a slow reader arriving late with an old copy
    assert production.reader.get(TASKS, key)["title"] == "Newer"


def test_one_batch_writes_through_every_row_it_touched_in_every_table_deleted_rows_as_absent(production):
    # One batch: a project, members added (a two-column key) and one removed (a deleted row), tasks.
    generate_history(production.app, users=3, projects=2, tasks=5, changes=0)
    catch_up(production)
    project_id = production.store.find(PROJECTS, {})[0]["id"]
    members = production.store.find(PROJECT_MEMBERS, {"project_id": project_id})
    owner = next(m for m in members if m["role"] == "owner")
    leaving = next(m for m in members if m["role"] != "owner")
    production.app.execute(production.app.remove_member(uuid.UUID(project_id), uuid.UUID(leaving["user_id"]),
                                 ctx(uuid.UUID(owner["user_id"]), 99)))
    catch_up(production)

    cache = production.reader.cache
    for projection, table in (("projects", PROJECTS), ("projects", PROJECT_MEMBERS), ("tasks", TASKS)):
        for row in production.store.find(table, {}):
            key = {k: row[k] for k in table.primary_key}
            cached = cache.lookup(projection, table, key).value
            assert cached is not None and json.loads(cached) == row, (table.name, key)  # written through, not filled
    gone = {"project_id": project_id, "user_id": leaving["user_id"]}
    assert cache.lookup("projects", PROJECT_MEMBERS, gone).value == "null"  # the deletion, written through
    assert production.reader.get(PROJECT_MEMBERS, gone) is None
