"""The search projection fed by Kafka, on each search store (SQLite FTS5, PostgreSQL full-text,
Elasticsearch) and the real broker: it builds the same documents and answers searches as the
log-following projector does, and a worker killed mid-batch and restarted loses nothing and
applies nothing twice (its partition positions commit with the documents)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from infra.composition import TaskFlowSystem, build_system
from infra.projector import ProjectionRunner
from projections.search import SearchProjection, SearchQuery, SearchStore
from tests.conftest import fresh_elasticsearch_prefix
from tests.integration.history import generate_history
from tests.integration.test_kafka import (
    FAST_GROUP,
    consume_to,
    consumers_of,
    delete_topic,
    kafka_values,
    read_topic,
    run_child,
    settings_of,
)
from tests.integration.test_rebuild import stored_search_documents
from tests.services import fresh_postgres_database, service_url

pytest.importorskip("kafka")
from infra.kafka_relay import header  # noqa: E402


@pytest.fixture(params=["sqlite", "postgres", "elasticsearch"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def values(kind: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Kafka settings unique to the test, over the search store ``kind`` (SQLite: the embedded
    read-model database; Elasticsearch: its dead letters in PostgreSQL, as in production)."""
    bootstrap = service_url("KAFKA_BOOTSTRAP_SERVERS")
    with fresh_postgres_database() as database, ExitStack() as stack:
        chosen = kafka_values(tmp_path, database, bootstrap)
        if kind == "sqlite":
            chosen.update(database_url=None, redis_url=None)
        if kind == "elasticsearch":
            chosen.update(elasticsearch_url=service_url("ELASTICSEARCH_URL"),
                          elasticsearch_index_prefix=stack.enter_context(fresh_elasticsearch_prefix()))
        yield chosen
        delete_topic(bootstrap, chosen["kafka_topic"])


@pytest.fixture
def system(values: dict[str, Any]) -> Iterator[TaskFlowSystem]:
    built = build_system(settings_of(values), projection_names=[SearchProjection.name])
    yield built
    built.close()


@pytest.fixture
def followed(kind: str, tmp_path: Path) -> Iterator[Any]:
    """An empty search store of the same kind, for the log-following projector to fill."""
    if kind == "sqlite":
        from infra.sqlite_search import SQLiteSearchStore

        built: Any = SQLiteSearchStore(tmp_path / "followed.db")
        yield built
        built.close()
    elif kind == "postgres":
        from infra.postgres_readmodels import PostgresReadModelStore
        from infra.postgres_search import PostgresSearchStore

        with fresh_postgres_database() as url:
            readmodels = PostgresReadModelStore(url)
            yield PostgresSearchStore(readmodels.pool)
            readmodels.close()
    else:
        from infra.elasticsearch_search import ElasticsearchSearchStore

        with fresh_elasticsearch_prefix() as prefix:
            built = ElasticsearchSearchStore(service_url("ELASTICSEARCH_URL"), alias=prefix)
            yield built
            built.close()


def follow_log(system: TaskFlowSystem, store: Any) -> None:
    ProjectionRunner(SearchProjection(), store, system.app.recorder, system.app.mapper).catch_up()


def answers(store: SearchStore, words: list[str]) -> list[Any]:
    """What searches for these words return: hits (without scores, which depend on index
    statistics), totals and facets."""
    found = []
    for word in words:
        result = store.search(SearchQuery(word, per_page=100))
        found.append((word, sorted((h.type, h.id, json.dumps(h.document, sort_keys=True)) for h in result.hits),
                      result.total, result.facets))
    return found


def title_words(documents: list[tuple]) -> list[str]:
    """A few words that occur in the documents' titles or names (so the searches find something)."""
    words: set[str] = set()
    for document in documents:
        fields = json.loads(document[-1])
        words.update(w.lower() for w in str(fields.get("title") or fields.get("name") or "").split() if w.isalpha())
    return sorted(words)[:6]


def test_search_through_kafka_equals_search_following_the_log(system, followed):
    head = generate_history(system.app)
    system.relay.catch_up()
    consume_to(head, consumers_of(system))
    follow_log(system, followed)

    documents = stored_search_documents(system.search)
    assert documents and documents == stored_search_documents(followed)
    words = title_words(documents)
    assert words
    assert answers(system.search, words) == answers(followed, words)


def test_a_search_consumer_killed_mid_batch_and_restarted_loses_and_duplicates_nothing(system, values, followed):
    head = generate_history(system.app)
    system.relay.catch_up()
    consumer = consumers_of(system)[0]
    handled = system.app.recorder.select_notifications(start=1, limit=100_000, topics=consumer.projection.topics)
    crash_at = handled[len(handled) // 2].id

    child = run_child("consume", json.dumps(values), str(crash_at), "7", SearchProjection.name)
    assert child.returncode == -9, child.stderr
    base = system.search.position(SearchProjection.name)
    assert base < crash_at
    with system.search.transaction(SearchProjection.name) as tx:
        committed = tx.partitions(values["kafka_topic"])
    assert committed  # earlier batches did commit their partition positions with their documents

    consumer.consumer_config = FAST_GROUP
    consume_to(head, [consumer], timeout=60)  # waits for the dead member's session to end
    # Exactly the events past where each partition was committed were applied after the restart.
    topics = {t.encode() for t in consumer.projection.topics}
    expected = sum(
        1 for r in read_topic(values["kafka_bootstrap_servers"], values["kafka_topic"])
        if header(r.headers, "type") in topics
        and r.offset >= (committed[r.partition].offset if r.partition in committed else 0)
        and int(header(r.headers, "position")) > max(committed[r.partition].position if r.partition in committed
                                                     else 0, base)
    )
    assert consumer.status.applied_events == expected
    follow_log(system, followed)
    assert stored_search_documents(system.search) == stored_search_documents(followed)


def test_after_a_search_rebuild_the_consumer_applies_only_the_events_after_the_swap(system, values, followed):
    first = generate_history(system.app)
    system.relay.catch_up()
    consumer = consumers_of(system)[0]
    consume_to(first, [consumer])
    # Relayed but not consumed yet: the copy applies these from the event log, the consumer must not.
    generate_history(system.app, seed=8)
    system.relay.catch_up()
    swapped_at = system.rebuilds.run(SearchProjection.name)
    assert swapped_at == system.app.head_position() > first
    with system.search.transaction(SearchProjection.name) as tx:
        tracked = tx.partitions(values["kafka_topic"])
    assert tracked and all(at.position >= swapped_at for at in tracked.values())

    applied_before = consumer.status.applied_events
    last = generate_history(system.app, seed=9)
    system.relay.catch_up()
    consume_to(last, [consumer])
    later = system.app.recorder.select_notifications(start=swapped_at, limit=100_000,
                                                     topics=consumer.projection.topics, inclusive_of_start=False)
    assert consumer.status.applied_events - applied_before == len(later) > 0
    follow_log(system, followed)
    assert stored_search_documents(system.search) == stored_search_documents(followed)


def test_a_poison_event_met_by_the_search_consumer_is_dead_lettered_and_a_retry_completes_the_documents(
    system, followed
):
    from tests.integration.poison import RaisesOn, at_positions, pick_poison

    head = generate_history(system.app)
    system.relay.catch_up()
    consumer = consumers_of(system)[0]
    poison = pick_poison(system.app.recorder, consumer.projection.topics)
    consumer.projection = RaisesOn(consumer.projection, at_positions(poison.position))

    consume_to(head, [consumer], timeout=60)
    letters = system.operations.dead_letters(SearchProjection.name)
    assert [(d.position, d.status) for d in letters] == [(poison.position, "open")] + [
        (q, "parked") for q in poison.later]
    for _ in range(5):  # the partition moved past it: nothing is recorded twice
        consumer.poll_once(timeout_ms=50)
    assert len(system.operations.dead_letters(SearchProjection.name)) == len(letters)

    consumer.projection.fixed = True
    assert system.operations.retry(SearchProjection.name, poison.position).applied == [poison.position, *poison.later]
    follow_log(system, followed)
    assert stored_search_documents(system.search) == stored_search_documents(followed)
