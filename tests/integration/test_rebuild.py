"""Rebuilding a projection beside the live one, then swapping it in (infra/rebuild.py), on SQLite
and on the real servers (PostgreSQL, Redis row cache, Elasticsearch): under concurrent writes and
reads, with a changed handler, killed mid-way, through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from commands.models import CreateProject, CreateTask, RegisterUser, UpdateTask
from domain.task import Task
from infra.composition import TaskFlowSystem, build_system
from infra.elasticsearch_search import ElasticsearchSearchStore
from infra.settings import Settings
from projections.base import handles
from projections.search import SearchQuery
from projections.store import ListQuery
from projections.tasks import TASKS, TasksProjection
from tests.integration.history import ctx, generate_history
from tests.conftest import embedded_settings
from tests.integration.test_projections import catch_up, dump, reference
from tests.services import fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]


# --- helpers -------------------------------------------------------------------------------------


def search_documents(system: TaskFlowSystem) -> list[tuple]:
    """Every search document (tombstones and hidden ones too), whatever the search backend:
    (id, type, version, ...)."""
    return stored_search_documents(system.search)


def stored_search_documents(search: Any) -> list[tuple]:
    """``search_documents`` of one search store."""
    if isinstance(search, ElasticsearchSearchStore):
        from elasticsearch import helpers

        search.es.indices.refresh(index=search.alias)
        hits = helpers.scan(search.es, index=search.alias, query={"query": {"match_all": {}}}, version=True)
        return sorted((h["_id"], h["_source"]["type"], h["_version"], json.dumps(h["_source"], sort_keys=True))
                      for h in hits if h["_source"].get("type") != "tracking")
    with search.write_connection() as execute:
        rows = execute("SELECT id, type, version, deleted, hidden, document FROM search_documents", [])
    return sorted(
        (r["id"], r["type"], int(r["version"]), bool(r["deleted"]), bool(r["hidden"]),
         json.dumps(json.loads(r["document"]) if isinstance(r["document"], str) else r["document"], sort_keys=True))
        for r in rows
    )


def leftovers(system: TaskFlowSystem) -> list[str]:
    """Tables (or search indices) of rebuild copies, and the copies' tracking rows."""
    search: Any = system.search
    with system.store.write_connection() as execute:
        if system.settings.database_url:
            tables = execute("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()", [])
        else:
            tables = execute("SELECT name FROM sqlite_master WHERE type = 'table'", [])
        tracking = execute("SELECT name FROM projection_tracking", [])
    found = [r["name"] for r in [*tables, *tracking] if "__r" in r["name"]]
    if isinstance(search, ElasticsearchSearchStore):
        live = set(search.es.indices.get_alias(name=search.alias))
        found += [i for i in search.es.indices.get(index=f"{search.alias}-v*") if i not in live]
    return found


def indexes(system: TaskFlowSystem, *tables: str) -> list[str]:
    """The names of the indexes of these tables."""
    with system.store.write_connection() as execute:
        if system.settings.database_url:
            rows = execute("SELECT indexname AS name, tablename AS t FROM pg_indexes"
                           " WHERE schemaname = current_schema()", [])
        else:
            rows = execute("SELECT name, tbl_name AS t FROM sqlite_master WHERE type = 'index'", [])
    return sorted(r["name"] for r in rows if r["t"] in tables)


def rebuild_rows(system: TaskFlowSystem, projection: str) -> list[dict[str, Any]]:
    with system.store.write_connection() as execute:
        p = system.store.dialect.placeholder
        return execute(f"SELECT * FROM projection_rebuilds WHERE projection = {p} ORDER BY generation", [projection])


def environment(settings: Settings) -> dict[str, str]:
    """The environment a `taskflow` process needs to run on the same system as ``settings``."""
    names = {
        "TASKFLOW_DATA_DIR": settings.data_dir, "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url, "REDIS_PREFIX": settings.redis_prefix,
        "ELASTICSEARCH_URL": settings.elasticsearch_url,
        "ELASTICSEARCH_INDEX_PREFIX": settings.elasticsearch_index_prefix,
        "JWT_PRIVATE_KEY": settings.jwt_private_key,
    }
    env = {k: v for k, v in os.environ.items() if k not in names and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({k: str(v) for k, v in names.items() if v is not None})
    env["PYTHONPATH"] = str(ROOT)
    return env


class Writer(threading.Thread):
    """Writes through the application service until stopped: new tasks, and changes to them."""

    def __init__(self, system: TaskFlowSystem):
        super().__init__(daemon=True)
        self.app = system.app
        self.stop = threading.Event()
        self.writes = 0
        self.error: BaseException | None = None
        owner = self.app.execute(self.app.register_user(RegisterUser(email="writer@example.com", password="password123",
                                                    name="Writer"), ctx(None, 0))).aggregate.id
        self.owner = owner
        self.project = self.app.execute(self.app.create_project(CreateProject(name="Busy"), ctx(owner, 0))).aggregate.id

    def run(self) -> None:
        try:
            tasks = []
            while not self.stop.is_set():
                self.writes += 1
                if not tasks or self.writes % 3:
                    cmd = CreateTask(title=f"Busy {self.writes}")
                    tasks.append(self.app.execute(self.app.create_task(self.project, cmd, ctx(self.owner, self.writes))).aggregate.id)
                else:
                    self.app.execute(self.app.update_task(tasks[self.writes % len(tasks)], UpdateTask(status="done"),
                                         ctx(self.owner, self.writes)))
                time.sleep(0.005)
        except BaseException as error:
            self.error = error


class Reader(threading.Thread):
    """Reads the tasks read model until stopped: the count may only grow, a known row never goes."""

    def __init__(self, system: TaskFlowSystem, known_task: str):
        super().__init__(daemon=True)
        self.reader = system.reader
        self.known = known_task
        self.stop = threading.Event()
        self.reads = 0
        self.problems: list[str] = []

    def run(self) -> None:
        last = 0
        while not self.stop.is_set():
            try:
                total = self.reader.query(TASKS, ListQuery(per_page=1)).total or 0
                if total < last:
                    self.problems.append(f"the task count dropped from {last} to {total}")
                last = total
                if self.reader.get(TASKS, {"id": self.known}) is None:
                    self.problems.append("a task vanished")
                self.reads += 1
            except Exception as error:  # a read that fails during the rebuild is what this test catches
                self.problems.append(repr(error))


# --- tests ---------------------------------------------------------------------------------------


def test_a_rebuild_under_concurrent_writes_and_reads_serves_the_old_copy_then_swaps_in_an_equal_one(system, tmp_path):
    generate_history(system.app, tasks=40, changes=200)
    catch_up(system)
    known = system.store.find(TASKS, {})[0]["id"]
    assert system.rebuilds is not None
    system.rebuilds.batch_size = 10  # many batches, so writes and reads overlap the catch-up and the swap
    system.projector.start()
    writer, reader = Writer(system), Reader(system, known)
    writer.start()
    reader.start()
    def paced(state: str, position: int, head: int, rate: float) -> None:
        # Each batch of the copy waits for a write, so writes land between the batches (and some
        # right before the swap) however fast the rebuild is.
        seen = writer.writes
        deadline = time.monotonic() + 2
        while writer.writes == seen and time.monotonic() < deadline:
            time.sleep(0.001)

    try:
        time.sleep(0.3)
        written_before = writer.writes
        system.rebuilds.run("tasks", paced)
        time.sleep(0.3)
    finally:
        writer.stop.set()
        writer.join()
        reader.stop.set()
        reader.join()
        system.projector.stop()
    assert writer.error is None
    assert writer.writes - written_before > 10, "the writes did not overlap the rebuild"
    assert reader.reads > 10 and reader.problems == []
    catch_up(system)
    head = system.app.head_position()
    assert system.store.position("tasks") == head
    assert dump(system.store) == reference(system, tmp_path / "reference.db")
    assert [r["state"] for r in rebuild_rows(system, "tasks")] == ["done"]
    assert leftovers(system) == []


class ShoutingTasks(TasksProjection):
    """The tasks projection after a handler change: titles are stored in capitals."""

    @handles(Task.Created)
    def created(self, e: Any, tx: Any, position: int) -> None:
        super().created(e, tx, position)
        tx.update(TASKS, {"id": str(e.originator_id)}, {"title": e.title.upper()})


def test_a_rebuild_after_a_handler_change_recomputes_every_row_from_the_whole_history(system):
    head = generate_history(system.app, tasks=12, changes=0)
    catch_up(system)
    task = system.store.find(TASKS, {})[0]
    names = indexes(system, "tasks")
    assert "tasks_project_id_status" in names
    # Cached (production: Redis) before the rebuild: the swap must not leave the old row cached.
    assert system.reader.get(TASKS, {"id": task["id"]})["title"] == task["title"]
    assert system.rebuilds is not None
    system.rebuilds.targets["tasks"].projection = ShoutingTasks()
    assert system.rebuilds.run("tasks") == head
    rows = system.store.find(TASKS, {})
    assert len(rows) == 12 and all(r["title"] == r["title"].upper() and r["title"].startswith("TASK") for r in rows)
    assert system.reader.get(TASKS, {"id": task["id"]})["title"] == task["title"].upper()
    assert system.store.position("tasks") == head
    # The swapped-in tables carry the live names' indexes, so a later rebuild starts from the same.
    assert indexes(system, "tasks") == names
    system.rebuilds.run("tasks")
    assert indexes(system, "tasks") == names


def test_a_search_rebuild_swaps_in_a_new_index_with_the_same_documents(system):
    check_search_rebuild(system)


def test_a_search_rebuild_on_postgres_full_text_search_swaps_in_equal_tables(tmp_path):
    """The production settings above search with Elasticsearch; without it, PostgreSQL does."""
    with fresh_postgres_database() as url:
        system = build_system(embedded_settings(tmp_path / "data", database_url=url))
        try:
            names = indexes(system, "search_documents", "search_words")
            assert "search_documents_tsv" in names
            check_search_rebuild(system)
            assert indexes(system, "search_documents", "search_words") == names
        finally:
            system.close()


def check_search_rebuild(system: TaskFlowSystem) -> None:
    generate_history(system.app, tasks=15, changes=60)
    catch_up(system)
    before = search_documents(system)
    found = system.search.search(SearchQuery(text="task"))
    assert found.total > 0
    search: Any = system.search
    old_index = set(search.es.indices.get_alias(name=search.alias)) if isinstance(search, ElasticsearchSearchStore) else None
    assert system.rebuilds is not None
    system.rebuilds.run("search")
    assert search_documents(system) == before
    again = system.search.search(SearchQuery(text="task"))
    assert (again.total, [h.id for h in again.hits]) == (found.total, [h.id for h in found.hits])
    if old_index is not None:
        new_index = set(search.es.indices.get_alias(name=search.alias))
        assert len(new_index) == 1 and new_index != old_index
        assert next(iter(new_index)).endswith("-r1")
        assert not search.es.indices.exists(index=",".join(old_index))
    # The live projector carries on into the new copy.
    app = system.app
    owner = app.execute(app.register_user(RegisterUser(email="late@example.com", password="password123", name="Late"),
                              ctx(None, 1))).aggregate.id
    project = app.execute(app.create_project(CreateProject(name="Later"), ctx(owner, 2))).aggregate.id
    app.execute(app.create_task(project, CreateTask(title="Zeppelin"), ctx(owner, 3)))
    catch_up(system)
    assert system.search.search(SearchQuery(text="zeppelin")).total == 1
    assert leftovers(system) == []


@pytest.mark.parametrize("point", ["catching-up", "swapping"])
@pytest.mark.parametrize("projection", ["tasks", "search"])
def test_a_rebuild_killed_mid_way_leaves_the_live_copy_serving_and_the_next_rebuild_succeeds(
        projection, point, system, settings):
    head = generate_history(system.app, tasks=20, changes=80)
    catch_up(system)
    rows, documents = dump(system.store), search_documents(system)
    child = subprocess.run(
        [sys.executable, "-m", "tests.integration.crash_rebuild", projection, point],
        cwd=ROOT, env=environment(settings), capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == -9, child.stderr
    assert dump(system.store) == rows
    assert search_documents(system) == documents
    assert system.store.position(projection) == head if projection != "search" else system.search.position("search") == head
    assert leftovers(system), "the killed rebuild left no copy behind: it was killed too early or too late"

    assert system.rebuilds is not None
    assert system.rebuilds.run(projection) == head
    assert dump(system.store) == rows
    assert search_documents(system) == documents
    assert leftovers(system) == []
    assert [(r["state"], r["error"]) for r in rebuild_rows(system, projection)] == [
        ("failed", "abandoned (its process stopped)"), ("done", None)]
    # The live projector still writes the (new) live copy.
    generate_history(system.app, seed=8, users=1, projects=1, tasks=2, changes=0)
    catch_up(system)
    assert len(system.store.find(TASKS, {})) == 22
    assert len([d for d in search_documents(system) if d[1] == "task"]) == 22


def test_the_cli_rebuilds_with_a_progress_bar_and_refuses_an_unknown_projection(system, settings):
    head = generate_history(system.app, tasks=10, changes=40)
    catch_up(system)
    rows = dump(system.store)
    taskflow = [sys.executable, "-m", "infra.cli"]
    done = subprocess.run([*taskflow, "projections", "rebuild", "activity"], cwd=ROOT, env=environment(settings),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"activity rebuilt and swapped in at position {head}" in done.stdout
    assert "rebuild activity" in done.stderr and "events/s" in done.stderr
    assert f"{head}/{head}" in done.stderr
    assert dump(system.store) == rows
    unknown = subprocess.run([*taskflow, "projections", "rebuild", "nope"], cwd=ROOT, env=environment(settings),
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "unknown projection nope" in unknown.stderr
