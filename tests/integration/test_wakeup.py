"""A follower of the PostgreSQL event store in another process than the writer (``taskflow project``,
``taskflow relay``) is woken by PostgreSQL LISTEN/NOTIFY when events commit, instead of waiting out
its poll period; and a lost listener connection is re-established without losing an event.

The writer and the follower here are two systems on one database: the writer's saves cannot wake
the follower in-process, exactly as between two processes. The poll period is 30 s, so a follower
that is not woken fails these tests."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from infra.composition import TaskFlowSystem, build_system
from infra.settings import Settings
from tests.conftest import embedded_settings
from tests.integration.history import generate_history
from tests.services import fresh_postgres_database

POLL_SECONDS = 30.0


@pytest.fixture
def pg_settings(tmp_path) -> Iterator[Settings]:
    with fresh_postgres_database() as url:
        yield embedded_settings(tmp_path / "data", database_url=url, projector_poll_seconds=POLL_SECONDS)


@pytest.fixture
def writer(pg_settings: Settings) -> Iterator[TaskFlowSystem]:
    system = build_system(pg_settings, projection_names=[])
    yield system
    system.close()


@pytest.fixture
def follower(pg_settings: Settings) -> Iterator[TaskFlowSystem]:
    system = build_system(pg_settings, projection_names=["tasks"])
    system.projector.start()
    assert system.wakeup is not None
    system.wakeup.start()
    assert system.wakeup.listening.wait(5), "the follower never started listening"
    time.sleep(0.3)  # its first pass over the (empty) log is done: from now on only a wake-up moves it
    yield system
    system.close()


def wait_for_position(system: TaskFlowSystem, projection: str, position: int, seconds: float) -> float:
    started = time.monotonic()
    while system.store.position(projection) < position:
        if time.monotonic() - started > seconds:
            raise AssertionError(
                f"{projection} stayed at {system.store.position(projection)}, not {position}, for {seconds} s"
            )
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_follower_in_another_process_applies_new_events_without_waiting_for_its_poll(writer, follower):
    head = generate_history(writer.app, users=2, projects=1, tasks=5, changes=10)
    assert wait_for_position(follower, "tasks", head, seconds=3) < 3


def test_a_follower_whose_listener_connection_was_killed_listens_again_and_misses_nothing(
    writer, follower, pg_settings
):
    first = generate_history(writer.app, seed=1, users=1, projects=1, tasks=3, changes=3)
    wait_for_position(follower, "tasks", first, seconds=3)
    with psycopg.connect(pg_settings.database_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        ).fetchall()
    assert killed, "no listening session found"
    # Written while the listener may be down: found when it listens again, not after the poll period.
    head = generate_history(writer.app, seed=2, users=1, projects=1, tasks=3, changes=3)
    assert wait_for_position(follower, "tasks", head, seconds=8) < 8
