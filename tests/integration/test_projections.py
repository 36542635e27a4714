"""Projection guarantees on the embedded store: rows and position commit together, so a crash
mid-batch loses and duplicates nothing, and applying an event twice changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.projector import ProjectionRunner
from infra.sqlite_readmodels import SQLiteReadModelStore
from projections.registry import all_projections
from tests.integration.history import generate_history

ROOT = Path(__file__).resolve().parents[2]


def dump(store) -> dict[str, list[dict]]:
    """Every row of every read-model table, in primary-key order (any backend)."""
    tables = {}
    for projection in all_projections():
        for table in projection.tables:
            rows = store.find(table, {})
            tables[table.name] = sorted(rows, key=lambda r: tuple(str(r[k]) for k in table.primary_key))
    return tables


def reference(system, path: Path) -> dict[str, list[tuple]]:
    """The read models built from scratch, in one uninterrupted run, into a separate (SQLite)
    database: comparing with it also checks that every backend builds the same rows."""
    store = SQLiteReadModelStore(path)
    for projection in all_projections():
        ProjectionRunner(projection, store, system.app.recorder, system.app.mapper).catch_up()
    rows = dump(store)
    store.close()
    return rows


def catch_up(system) -> None:
    while system.projector.run_once():
        pass


def test_every_projection_reaches_the_head_and_matches_an_independent_rebuild(system, tmp_path):
    head = generate_history(system.app)
    catch_up(system)
    for runner in system.projector.runners:
        assert runner.store.position(runner.name) == head
    assert dump(system.store) == reference(system, tmp_path / "ref.db")
    assert len(dump(system.store)["tasks"]) == 30


def test_applying_every_event_a_second_time_changes_no_row(system):
    generate_history(system.app)
    catch_up(system)
    before = dump(system.store)
    notifications = system.app.recorder.select_notifications(start=1, limit=10_000)
    for runner in system.projector.runners:
        with runner.store.transaction(runner.name) as tx:
            for n in notifications:
                runner.projection.process(system.app.mapper.to_domain_event(n), tx, n.id)
    assert dump(system.store) == before


def test_a_caught_up_projection_does_nothing_when_run_again(system):
    generate_history(system.app, tasks=5, changes=10)
    catch_up(system)
    before = dump(system.store)
    assert not system.projector.run_once()
    assert dump(system.store) == before


@pytest.mark.parametrize("projection", ["tasks", "activity", "projects"])
def test_a_projector_killed_mid_batch_and_restarted_gives_the_same_read_model(projection, system, settings, tmp_path):
    head = generate_history(system.app)
    batch_size = 3
    # Crash on the middle one of the events this projection handles, well inside some batch.
    runner = next(r for r in system.projector.runners if r.name == projection)
    handled = system.app.recorder.select_notifications(start=1, limit=100_000, topics=runner.projection.topics)
    crash_at = handled[(len(handled) // 2) // batch_size * batch_size + 1].id
    child = subprocess.run(
        [sys.executable, "-m", "tests.integration.crash_projector", str(settings.data_dir), projection,
         str(crash_at), str(batch_size), settings.database_url or ""],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == -9, child.stderr
    # The batch that was being applied did not commit: the projection stands before it.
    applied = system.store.position(projection)
    assert applied < crash_at
    catch_up(system)
    assert system.store.position(projection) == head
    assert dump(system.store) == reference(system, tmp_path / "ref.db")


def test_a_projection_whose_version_changes_is_rebuilt_from_position_zero(system, tmp_path):
    head = generate_history(system.app, tasks=6, changes=15)
    catch_up(system)
    before = dump(system.store)
    runner = next(r for r in system.projector.runners if r.name == "tasks")
    bumped = type("TasksV2", (type(runner.projection),), {"version": runner.projection.version + 1})()
    rebuilt = ProjectionRunner(bumped, system.store, system.app.recorder, system.app.mapper)
    assert system.store.position("tasks") == 0
    assert system.store.find(runner.projection.tables[0], {}) == []
    rebuilt.catch_up()
    assert system.store.position("tasks") == head
    assert dump(system.store) == before
