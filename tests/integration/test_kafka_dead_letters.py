"""A poison event met by a Kafka-fed projection worker (real broker, PostgreSQL, Redis): dead-lettered
in the same commit as the partition offsets, the worker goes on to the head, the aggregate's later
events are parked; after the fix a retry gives exactly the read model of a clean rebuild."""

from __future__ import annotations

import json

import pytest

from projections.tasks import TASKS
from tests.integration.history import generate_history
from tests.integration.poison import RaisesOn, at_positions, pick_poison
from tests.integration.test_projections import dump, reference

pytest.importorskip("kafka")
from tests.integration.test_kafka import (  # noqa: E402, F401  (fixtures: database, system, values)
    FAST_GROUP,
    consume_to,
    consumers_of,
    database,
    run_child,
    system,
    values,
)


def test_a_kafka_worker_dead_letters_a_poison_event_goes_on_and_a_retry_completes_the_read_model(system, tmp_path):
    head = generate_history(system.app)
    system.relay.catch_up()
    consumer = next(c for c in consumers_of(system) if c.name == "tasks")
    poison = pick_poison(system.app.recorder, consumer.projection.topics)
    consumer.projection = RaisesOn(consumer.projection, at_positions(poison.position))

    consume_to(head, consumers_of(system), timeout=90)  # five groups to form on a shared, busy broker
    letters = system.operations.dead_letters("tasks")
    assert [(d.position, d.status, d.blocked_by) for d in letters] == [(poison.position, "open", None)] + [
        (q, "parked", poison.position) for q in poison.later
    ]
    assert "handler bug" in (letters[0].error or "")
    # The worker moved past the event in its partition: polling again records nothing twice.
    for _ in range(5):
        consumer.poll_once(timeout_ms=50)
    assert len(system.operations.dead_letters("tasks")) == len(letters)
    status = system.operations.status("tasks")
    assert (status.feed, status.state, status.dead_letters, status.lag) == ("kafka", "degraded", 1, 0)
    relay = system.operations.relay()
    assert relay is not None and (relay.position, relay.lag) == (head, 0)

    consumer.projection.fixed = True
    repair = system.operations.retry("tasks", poison.position)
    assert repair.applied == [poison.position, *poison.later]
    assert dump(system.store) == reference(system, tmp_path / "ref.db")
    expected = system.store.get(TASKS, {"id": poison.aggregate_id})
    assert system.reader.get(TASKS, {"id": poison.aggregate_id}) == expected  # the row cache too


def test_a_worker_killed_once_a_dead_letter_committed_neither_loses_nor_repeats_it(system, values, tmp_path):
    head = generate_history(system.app)
    system.relay.catch_up()
    consumer = next(c for c in consumers_of(system) if c.name == "tasks")
    poison = pick_poison(system.app.recorder, consumer.projection.topics)
    child = run_child("dead-letter", json.dumps(values), str(poison.position), "7", "tasks")
    assert child.returncode == -9, child.stderr
    assert [(d.position, d.status, d.attempts) for d in system.operations.dead_letters("tasks")][0] == (
        poison.position, "open", 1)

    # Restarted with the bug still there: the partition's stored offset is past the event.
    consumer.projection = RaisesOn(consumer.projection, at_positions(poison.position))
    consumer.consumer_config = FAST_GROUP
    consume_to(head, [consumer], timeout=90)  # waits for the dead member's session to end
    assert [(d.position, d.status, d.blocked_by, d.attempts) for d in system.operations.dead_letters("tasks")] == [
        (poison.position, "open", None, 1)] + [(q, "parked", poison.position, 0) for q in poison.later]

    consumer.projection.fixed = True
    system.operations.retry("tasks", poison.position)
    built, expected = dump(system.store), reference(system, tmp_path / "ref.db")
    assert built["tasks"] == expected["tasks"]
