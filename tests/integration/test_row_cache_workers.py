"""The Redis row cache with two workers of one projection (two Kafka consumers of a group, a
partition moving in a rebalance, two log followers) on one database and one Redis prefix: a
cached row is never older than the position a read reports, whatever order the workers' commits
and write-throughs interleave in, and when a worker dies between its commit and its write-through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from commands.models import UpdateTask
from domain.task import Task
from infra.composition import build_system
from infra.postgres_readmodels import PostgresReadModelStore
from infra.projector import ProjectionRunner
from infra.redis_cache import RowCache
from projections.tasks import TASKS, TasksProjection
from tests.conftest import embedded_settings
from tests.integration.history import ctx, generate_history
from tests.integration.test_row_cache import catch_up, production  # noqa: F401 (a fixture)
from tests.services import fresh_postgres_database, service_url

ROOT = Path(__file__).resolve().parents[2]


def tasks_runner(system) -> ProjectionRunner:
    return next(r for r in system.projector.runners if r.name == "tasks")


@pytest.fixture
def second_worker(production):
    """Another worker of the tasks projection: its own connections and cache client, same places."""
    store = PostgresReadModelStore(production.settings.database_url)
    runner = ProjectionRunner(TasksProjection(), store, production.app.recorder, production.app.mapper,
                              cache=RowCache(tasks_runner(production).cache.redis, production.settings.redis_prefix))
    yield runner
    store.close()


def two_tasks(system) -> tuple[Task, Task]:
    rows = system.store.find(TASKS, {})
    return tuple(system.app.load(uuid.UUID(r["id"]), Task, "task") for r in rows[:2])  # type: ignore[return-value]


def rename(system, task: Task, title: str) -> None:
    system.app.execute(system.app.update_task(task.id, UpdateTask(title=title), ctx(task.created_by, 99)))


def assert_never_older_than_reported(system, tasks: list[Task]) -> None:
    """Nothing is being written: every row read through the cache, at the position the read
    reports, is the database's row (which stands at or after that position)."""
    position = system.reader.position("tasks")
    assert position == system.store.position("tasks")
    for task in tasks:
        key = {"id": str(task.id)}
        assert system.reader.get(TASKS, key) == system.store.get(TASKS, key), f"cached at position {position}"


def kill_a_worker_between_commit_and_write_through(kind: str, settings: dict[str, object]) -> None:
    """Run a worker of the tasks projection in a child process (tests/integration/crash_row_cache.py)."""
    child = subprocess.run(
        [sys.executable, "-m", "tests.integration.crash_row_cache", kind, json.dumps(settings)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=150,
    )
    assert child.returncode == -9, child.stderr


def test_a_late_write_through_of_an_earlier_commit_does_not_leave_its_older_row(production, second_worker):
    generate_history(production.app, tasks=3, changes=0)
    catch_up(production)
    x, y = two_tasks(production)
    worker_a = tasks_runner(production)
    committed, overtaken, arrived = threading.Event(), threading.Event(), threading.Event()
    write_through = worker_a.cache.write_through

    def late_write_through(*args, **kwargs):
        committed.set()
        if overtaken.wait(30):
            write_through(*args, **kwargs)
            arrived.set()

    worker_a.cache.write_through = late_write_through  # type: ignore[method-assign]
    rename(production, x, "First")
    a = threading.Thread(target=worker_a.step)
    a.start()
    assert committed.wait(30)  # A has committed "First", and not yet written it through
    rename(production, x, "Second")
    assert second_worker.step()  # B commits "Second" and writes it through first
    overtaken.set()
    a.join(30)
    assert arrived.is_set()  # A's write-through came, after B's
    del worker_a.cache.write_through
    rename(production, y, "Later")  # a later batch, touching another row, moves the cache on
    assert second_worker.step()
    assert production.store.get(TASKS, {"id": str(x.id)})["title"] == "Second"
    assert_never_older_than_reported(production, [x, y])


def a_worker_commits_and_dies_before_writing_through(production: Any, task: Task) -> None:
    """``task`` renamed; a log worker in another process commits the rename, then is SIGKILLed
    before writing it through (the rename was not cached before)."""
    assert production.reader.get(TASKS, {"id": str(task.id)})["title"] != "Committed, never written through"
    rename(production, task, "Committed, never written through")
    settings = production.settings
    kill_a_worker_between_commit_and_write_through("log", {
        "data_dir": str(settings.data_dir), "database_url": settings.database_url,
        "redis_url": settings.redis_url, "redis_prefix": settings.redis_prefix})


def test_a_worker_killed_between_commit_and_write_through_leaves_no_stale_row(production, second_worker):
    generate_history(production.app, tasks=3, changes=0)
    catch_up(production)
    x, y = two_tasks(production)
    a_worker_commits_and_dies_before_writing_through(production, x)
    assert production.store.get(TASKS, {"id": str(x.id)})["title"] == "Committed, never written through"
    rename(production, y, "Later")  # the surviving worker's next batch touches another row
    assert second_worker.step()
    assert_never_older_than_reported(production, [x, y])


def commit_without_write_through(worker: ProjectionRunner) -> None:
    """The worker applies a batch and commits it, then stops before writing it through."""

    def killed(*_args, **_kwargs):
        raise SystemExit("killed after commit, before write-through")

    worker.cache.write_through = killed  # type: ignore[method-assign]
    try:
        with pytest.raises(SystemExit):
            worker.step()
    finally:
        del worker.cache.write_through


def test_a_log_follower_realigns_the_cache_when_another_died_before_writing_through_its_last_commit(
        production, second_worker):
    generate_history(production.app, tasks=3, changes=0)
    catch_up(production)
    x, y = two_tasks(production)
    a_worker_commits_and_dies_before_writing_through(production, x)
    assert production.reader.position("tasks") < production.store.position("tasks")
    # Nothing new comes: the survivor, caught up, waits a grace period for the write-through.
    second_worker.write_through_grace_seconds = 0.5
    assert not second_worker.step()
    assert production.reader.position("tasks") < production.store.position("tasks")
    time.sleep(0.5)
    assert not second_worker.step()
    assert_never_older_than_reported(production, [x, y])


def test_a_readers_copy_read_before_an_invalidation_is_not_served_after_it(production, second_worker):
    generate_history(production.app, tasks=3, changes=0)
    catch_up(production)
    x, y = two_tasks(production)
    worker_a = tasks_runner(production)
    # An invalidation first, so that x is not cached and the reader reads it from the database.
    rename(production, y, "Committed, never written through")
    commit_without_write_through(worker_a)
    rename(production, y, "Written through, after a gap")
    assert second_worker.step()
    database = production.reader.inner

    class SlowDatabase:
        """The reader's database read of x returns x's row, then, before the reader caches it, x
        changes in a commit that is never written through, and another worker's batch
        invalidates the cache."""

        def __getattr__(self, name):
            return getattr(database, name)

        def get(self, table, key):
            row = database.get(table, key)
            if key == {"id": str(x.id)}:
                rename(production, x, "Committed, never written through")
                commit_without_write_through(worker_a)
                rename(production, y, "Later")
                assert second_worker.step()
            return row

    production.reader.inner = SlowDatabase()
    assert production.reader.get(TASKS, {"id": str(x.id)})["title"] != "Committed, never written through"
    production.reader.inner = database
    assert_never_older_than_reported(production, [x, y])


OLD_TRACKING_DDL = ("CREATE TABLE projection_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL, "
                    "version INTEGER NOT NULL)")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_read_model_database_made_before_numbered_commits_is_migrated_at_start(backend, tmp_path):
    import sqlite3

    import psycopg

    data = tmp_path / "data"
    data.mkdir()
    with fresh_postgres_database() as url:
        if backend == "postgres":
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(OLD_TRACKING_DDL)
        else:
            with sqlite3.connect(data / "readmodels.db") as conn:
                conn.execute(OLD_TRACKING_DDL)
        settings = embedded_settings(data, database_url=url if backend == "postgres" else None,
                                     redis_url=service_url("REDIS_URL"), redis_prefix=f"test-{uuid.uuid4().hex[:12]}:")
        system = build_system(settings)
        try:
            generate_history(system.app, tasks=3, changes=5)
            catch_up(system)
            assert system.store.tracking("tasks")[1] > 0  # its commits are numbered
            for row in system.store.find(TASKS, {}):
                assert system.reader.get(TASKS, {"id": row["id"]}) == row
            assert system.reader.position("tasks") == system.store.position("tasks")
        finally:
            system.close()


def test_a_projection_whose_version_changes_is_cached_afresh(production):
    generate_history(production.app, tasks=3, changes=0)
    catch_up(production)
    x, y = two_tasks(production)
    for n in range(3):  # more commits than the new version will have made when x changes
        rename(production, y, f"Change {n}")
        catch_up(production)
    assert production.reader.get(TASKS, {"id": str(x.id)})["title"] != "After the new version"  # cached
    worker = tasks_runner(production)
    bumped = type("TasksV2", (TasksProjection,), {"version": worker.projection.version + 1})()
    rebuilt = ProjectionRunner(bumped, production.store, production.app.recorder, production.app.mapper,
                               cache=worker.cache)
    rebuilt.catch_up()  # from position 0 again
    rename(production, x, "After the new version")
    rebuilt.catch_up()
    assert_never_older_than_reported(production, [x, y])
