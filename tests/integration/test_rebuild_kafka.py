"""A rebuild of a Kafka-fed projection (real broker and PostgreSQL): the swap leaves the
partition tracking consistent, so the consumers apply every later event once and no event the
copy already holds again."""

from __future__ import annotations

from tests.integration.history import generate_history
from tests.integration.test_kafka import consume_to, consumers_of, database, system, values  # noqa: F401
from tests.integration.test_projections import dump, reference


def test_after_a_rebuild_the_consumers_apply_only_the_events_after_the_swap(system, values, tmp_path):
    first = generate_history(system.app)
    system.relay.catch_up()
    consumers = consumers_of(system)
    consume_to(first, consumers)
    tasks = next(c for c in consumers if c.name == "tasks")
    # Relayed but not consumed yet: the copy applies these from the event log, the consumers must not.
    generate_history(system.app, seed=8)
    system.relay.catch_up()
    swapped_at = system.rebuilds.run("tasks")
    assert swapped_at == system.app.head_position() > first
    with system.store.transaction("tasks") as tx:
        tracked = tx.partitions(values["kafka_topic"])
    assert tracked and all(at.position >= swapped_at for at in tracked.values())

    applied_before = tasks.status.applied_events
    last = generate_history(system.app, seed=9)
    system.relay.catch_up()
    consume_to(last, consumers)
    later = system.app.recorder.select_notifications(start=swapped_at, limit=100_000, topics=tasks.projection.topics,
                                                     inclusive_of_start=False)
    assert tasks.status.applied_events - applied_before == len(later) > 0
    assert dump(system.store) == reference(system, tmp_path / "ref.db")
