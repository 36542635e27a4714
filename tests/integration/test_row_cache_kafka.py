"""The Redis row cache under Kafka, on the real broker, PostgreSQL and Redis: a consumer killed
between its commit and its write-through leaves no stale row, and the consumer that takes its
partitions over brings the cache to the database's position, even with nothing new to apply
(else reads waiting for the dead consumer's last position would wait in vain)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from commands.models import UpdateTask
from domain.task import Task
from infra.composition import TaskFlowSystem, build_system
from projections.tasks import TASKS
from tests.integration.history import ctx, generate_history
from tests.integration.test_row_cache_workers import kill_a_worker_between_commit_and_write_through

pytest.importorskip("kafka")
from infra.kafka_consumer import KafkaProjectionConsumer  # noqa: E402
from tests.integration.test_kafka import FAST_GROUP, consume_to, database, settings_of, values  # noqa: E402, F401


@pytest.fixture
def system(values: dict[str, Any]) -> Iterator[TaskFlowSystem]:
    """This process runs the tasks projection only: one consumer, in the test's thread."""
    built = build_system(settings_of(values), projection_names=["tasks"])
    yield built
    built.close()


def test_the_consumer_taking_over_from_one_killed_before_its_write_through_serves_no_stale_row(system, values):
    generate_history(system.app, tasks=3, changes=0)
    system.relay.catch_up()
    survivor: KafkaProjectionConsumer = system.projector.consumers[0]  # type: ignore[union-attr]
    survivor.consumer_config = FAST_GROUP
    consume_to(system.app.recorder.max_notification_id(), [survivor])
    row = system.store.find(TASKS, {})[0]
    task = system.app.load(uuid.UUID(row["id"]), Task, "task")
    key = {"id": str(task.id)}
    assert system.reader.get(TASKS, key)["title"] != "Committed, never written through"  # cached
    survivor.close()  # leaves the group: the next consumer gets every partition

    written = system.app.execute(system.app.update_task(task.id, UpdateTask(title="Committed, never written through"),
                                     ctx(task.created_by, 99)))
    system.relay.catch_up()
    kill_a_worker_between_commit_and_write_through("kafka", {**values, "projector_poll_seconds": 0.05})
    assert system.store.position("tasks") >= written.position

    # The survivor rejoins and is given the dead consumer's partitions (once its session ends).
    deadline = time.monotonic() + 60
    while not survivor.assignment() or survivor._unpositioned:
        assert time.monotonic() < deadline, "the survivor was never given the partitions"
        survivor.poll_once(timeout_ms=100)
    assert system.reader.position("tasks") == system.store.position("tasks")
    assert system.reader.get(TASKS, key) == system.store.get(TASKS, key)
