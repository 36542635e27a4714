"""Event distribution through Kafka, on the real broker and real PostgreSQL: the relay publishes
every event once and in order per aggregate; relay crashes, consumer crashes, two workers in one
group and a broker restart all end in exactly the read model a from-scratch rebuild gives; and a
read waits for its write through Kafka.

Every test uses its own topic, consumer groups and Redis prefix, so tests (and test runs) sharing
the broker do not meet."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.composition import TaskFlowSystem, build_http_app, build_system
from infra.postgres_readmodels import PostgresReadModelStore
from infra.projector import ProjectionRunner
from infra.sqlite_readmodels import SQLiteReadModelStore
from infra.settings import Settings
from projections.registry import all_projections
from projections.store import PartitionPosition
from projections.tasks import TASKS, TasksProjection
from tests.conftest import embedded_settings
from tests.e2e.helpers import create_project, signed_in
from tests.integration.history import generate_history
from tests.integration.test_projections import dump, reference
from tests.services import fresh_postgres_database, service_url

kafka = pytest.importorskip("kafka")
from infra.kafka_consumer import EXIT_STUCK, KafkaProjectionConsumer  # noqa: E402
from infra.kafka_relay import WATERMARK, decode_event, header  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Quick rebalances, so a test waits seconds for a dead member to leave, not the default 45 s.
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


def kafka_values(tmp_path: Path, database: str, bootstrap: str) -> dict[str, Any]:
    """Settings overrides for the production backends with Kafka, unique to this test."""
    unique = f"taskflow-test-{uuid.uuid4().hex[:10]}"
    return {
        "data_dir": str(tmp_path / "data"),
        "database_url": database,
        "redis_url": service_url("REDIS_URL"),
        "redis_prefix": f"{unique}:",
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic": unique,
        "kafka_group_prefix": f"{unique}-",
        "projector_poll_seconds": 0.05,
    }


def settings_of(values: dict[str, Any]) -> Settings:
    values = dict(values)
    return embedded_settings(Path(values.pop("data_dir")), **values)


@pytest.fixture
def values(tmp_path: Path, database: str) -> Iterator[dict[str, Any]]:
    bootstrap = service_url("KAFKA_BOOTSTRAP_SERVERS")
    chosen = kafka_values(tmp_path, database, bootstrap)
    yield chosen
    delete_topic(bootstrap, chosen["kafka_topic"])


@pytest.fixture
def system(values: dict[str, Any]) -> Iterator[TaskFlowSystem]:
    built = build_system(settings_of(values))
    yield built
    built.close()


def delete_topic(bootstrap: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=5000)
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()
    except Exception:  # the topic may not exist (a test failed before creating it)
        pass


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of the topic, partition by partition, in offset order."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                             enable_auto_commit=False, fetch_max_wait_ms=50)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: dict[int, list[Any]] = defaultdict(list)
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, "could not read the topic to its end"
            for tp, batch in consumer.poll(timeout_ms=200).items():
                records[tp.partition].extend(batch)
        return [r for p in sorted(records) for r in records[p]]
    finally:
        consumer.close(autocommit=False)


def consumers_of(system: TaskFlowSystem) -> list[KafkaProjectionConsumer]:
    return system.projector.consumers  # type: ignore[union-attr]


def consume_to(position: int, consumers: list[KafkaProjectionConsumer], timeout: float = 30) -> None:
    """Poll every consumer (in this thread) until each projection has applied ``position``."""
    deadline = time.monotonic() + timeout
    while any(c.store.position(c.name) < position for c in consumers):
        assert time.monotonic() < deadline, {c.name: c.store.position(c.name) for c in consumers}
        for c in consumers:
            c.poll_once(timeout_ms=50)


def wait_until(condition: Any, timeout: float, what: str | Any) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what() if callable(what) else what}"
        time.sleep(0.05)


def events_of(records: list[Any]) -> list[Any]:
    return [r for r in records if header(r.headers, "kind") != WATERMARK]


def run_child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.integration.crash_kafka", *args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )


# --- partition tracking in the read-model stores -------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def readmodel_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        store = SQLiteReadModelStore(tmp_path / "readmodels.db")
        yield store
        store.close()
        return
    with fresh_postgres_database() as url:
        store = PostgresReadModelStore(url)
        yield store
        store.close()


def test_partition_positions_commit_and_roll_back_with_the_projection_rows(readmodel_store):
    store, tasks = readmodel_store, TasksProjection()
    store.ensure_tables(tasks.name, tasks.version, tasks.tables)
    with store.transaction(tasks.name) as tx:
        tx.track_partitions("feed", {0: PartitionPosition(offset=10, position=5),
                                     1: PartitionPosition(offset=3, position=4)})
        tx.advance(4)
    with pytest.raises(RuntimeError), store.transaction(tasks.name) as tx:
        tx.track_partitions("feed", {0: PartitionPosition(offset=20, position=9)})
        tx.upsert(TASKS, {"id": "t1", "title": "never committed"})
        raise RuntimeError("the batch fails")
    with store.transaction(tasks.name) as tx:
        assert tx.partitions("feed") == {0: PartitionPosition(10, 5), 1: PartitionPosition(3, 4)}
        assert tx.partitions("another feed") == {}
        tx.track_partitions("feed", {0: PartitionPosition(offset=20, position=9)})
    assert store.find(TASKS, {}) == []
    assert store.position(tasks.name) == 4
    # A new projection version starts over: its partitions too.
    store.ensure_tables(tasks.name, tasks.version + 1, tasks.tables)
    with store.transaction(tasks.name) as tx:
        assert tx.partitions("feed") == {}


# --- the relay ---------------------------------------------------------------------------------


def test_the_relay_publishes_every_event_once_in_order_per_aggregate(system, values):
    head = generate_history(system.app)
    assert system.relay is not None
    system.relay.catch_up()
    assert system.store.position(system.relay.name) == head

    records = read_topic(values["kafka_bootstrap_servers"], values["kafka_topic"])
    events = events_of(records)
    assert sorted(int(header(r.headers, "position")) for r in events) == list(range(1, head + 1))
    by_key: dict[bytes, list[Any]] = defaultdict(list)
    for record in events:
        by_key[record.key].append(record)
    for key, keyed in by_key.items():
        assert len({r.partition for r in keyed}) == 1  # an aggregate's events share a partition
        stored = [decode_event(r.value) for r in keyed]
        assert [n.id for n in stored] == sorted(n.id for n in stored)
        assert [n.originator_version for n in stored] == sorted(n.originator_version for n in stored)
        for record, notification in zip(keyed, stored, strict=True):
            assert str(notification.originator_id).encode() == key
            assert header(record.headers, "type") == notification.topic.encode()
            event = system.app.mapper.to_domain_event(notification)
            assert event.originator_version == notification.originator_version
            actor = event.metadata.get("actorId")
            assert header(record.headers, "actorId") == (actor.encode() if actor else None)
    # Every partition ends with a watermark at the head: nothing older is pending anywhere.
    partitions = {r.partition for r in records}
    assert len(partitions) == 6
    for partition in partitions:
        last = [r for r in records if r.partition == partition][-1]
        assert header(last.headers, "kind") == WATERMARK and int(last.value) == head


def test_a_relay_killed_after_publishing_before_recording_publishes_again_and_the_read_model_stays_exact(
    system, values, tmp_path
):
    head = generate_history(system.app)
    crash_at = 100
    child = run_child("relay", json.dumps(values), str(crash_at), "40")
    assert child.returncode == -9, child.stderr
    # Kafka has the batch up to 120, the relay recorded only the one before it.
    assert system.store.position(system.relay.name) == 80

    system.relay.catch_up()
    assert system.store.position(system.relay.name) == head
    events = events_of(read_topic(values["kafka_bootstrap_servers"], values["kafka_topic"]))
    positions = [int(header(r.headers, "position")) for r in events]
    assert set(positions) == set(range(1, head + 1))
    assert len(positions) == head + 40  # 81..120 went out twice

    consume_to(head, consumers_of(system))
    assert dump(system.store) == reference(system, tmp_path / "ref.db")


# --- the consumers -----------------------------------------------------------------------------


@pytest.mark.parametrize("projection", ["tasks", "activity"])
def test_a_consumer_killed_mid_batch_and_restarted_gives_the_same_read_model(projection, system, values, tmp_path):
    head = generate_history(system.app)
    system.relay.catch_up()
    consumer = next(c for c in consumers_of(system) if c.name == projection)
    handled = system.app.recorder.select_notifications(start=1, limit=100_000, topics=consumer.projection.topics)
    crash_at = handled[len(handled) // 2].id

    child = run_child("consume", json.dumps(values), str(crash_at), "7", projection)
    assert child.returncode == -9, child.stderr
    applied = system.store.position(projection)
    assert applied < crash_at
    with system.store.transaction(projection) as tx:
        assert tx.partitions(values["kafka_topic"])  # earlier batches did commit

    consumer.consumer_config = FAST_GROUP
    consume_to(head, consumers_of(system), timeout=60)  # waits for the dead member's session to end
    assert dump(system.store) == reference(system, tmp_path / "ref.db")


def test_two_consumers_in_one_group_split_the_partitions_and_build_the_same_read_model(system, values, tmp_path):
    settings = settings_of(values)
    stores = [PostgresReadModelStore(values["database_url"]) for _ in range(2)]
    workers = [
        [KafkaProjectionConsumer(p, store, system.app.mapper, settings.kafka_bootstrap_servers,
                                 topic=settings.kafka_topic, group_prefix=settings.kafka_group_prefix,
                                 batch_size=20, consumer_config=FAST_GROUP)
         for p in all_projections()]
        for store in stores
    ]
    try:
        for worker in workers:
            for consumer in worker:
                consumer.start()
        pairs = list(zip(*workers, strict=True))

        def split(a: KafkaProjectionConsumer, b: KafkaProjectionConsumer) -> bool:
            # Each member's view changes at its own step of a rebalance (one may still hold what it
            # is giving up while the other already has it): wait for the group to settle on a split.
            return bool(a.assignment()) and bool(b.assignment()) and not a.assignment() & b.assignment() \
                and len(a.assignment() | b.assignment()) == 6

        def assignments() -> dict[str, tuple[list[int], list[int]]]:
            return {a.name: (sorted(tp.partition for tp in a.assignment()), sorted(tp.partition for tp in b.assignment()))
                    for a, b in pairs}

        # A member kafka-python leaves stuck mid-join reconnects after STUCK_JOIN_SECONDS.
        wait_until(lambda: all(split(a, b) for a, b in pairs), 45,
                   lambda: f"both workers to split the 6 partitions: {assignments()}")

        head = generate_history(system.app)
        system.relay.catch_up()
        wait_until(lambda: all(system.store.position(p.name) >= head for p in all_projections()), 30, "the head")
        # Which worker applied what is up to the group (a loaded machine may rebalance mid-run);
        # the split is asserted above, and the outcome must equal one worker's read model.
        assert dump(system.store) == reference(system, tmp_path / "ref.db")
    finally:
        for worker in workers:
            for consumer in worker:
                consumer.stop()
        for store in stores:
            store.close()


def test_a_projection_built_by_following_the_log_carries_on_through_kafka_applying_nothing_twice(
    system, values, tmp_path
):
    switched_at = generate_history(system.app)
    for consumer in consumers_of(system):  # search too, on its own store
        ProjectionRunner(consumer.projection, consumer.store, system.app.recorder, system.app.mapper).catch_up()
    head = generate_history(system.app, seed=8)
    system.relay.catch_up()
    consume_to(head, consumers_of(system))
    assert dump(system.store) == reference(system, tmp_path / "ref.db")
    for consumer in consumers_of(system):
        later = system.app.recorder.select_notifications(
            start=switched_at, limit=100_000, topics=consumer.projection.topics, inclusive_of_start=False
        )
        assert consumer.status.applied_events == len(later)


def test_taskflow_relay_and_project_processes_build_the_read_models(system, values, tmp_path):
    head = generate_history(system.app)
    env = {k: v for k, v in os.environ.items() if k not in ("ELASTICSEARCH_URL", "PORT")}
    env.update({
        "PYTHONPATH": str(ROOT), "TASKFLOW_DATA_DIR": values["data_dir"], "DATABASE_URL": values["database_url"],
        "REDIS_URL": values["redis_url"], "REDIS_PREFIX": values["redis_prefix"],
        "KAFKA_BOOTSTRAP_SERVERS": values["kafka_bootstrap_servers"], "KAFKA_TOPIC": values["kafka_topic"],
        "KAFKA_GROUP_PREFIX": values["kafka_group_prefix"], "PROJECTOR_POLL_SECONDS": "0.05",
    })
    commands = [["relay"], ["project", "users", "tasks"], ["project", "tasks"]]
    processes = [subprocess.Popen([sys.executable, "-m", "infra.cli", *c], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    try:
        wait_until(lambda: all(system.store.position(n) >= head for n in ("users", "tasks", system.relay.name)), 60,
                   "the relay and the workers to reach the head")
    finally:
        for process in processes:
            process.terminate()
        outcomes = [(process.wait(timeout=20), process.stderr.read()) for process in processes]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    assert "Kafka topic" in outcomes[1][1]
    expected = reference(system, tmp_path / "ref.db")
    built = dump(system.store)
    for table in ("users", "tasks"):
        assert built[table] == expected[table]
    assert system.store.position("projects") == 0  # no process ran it


# --- a broker restart --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateBroker:
    """A Kafka broker of this test's own (scripts/services start-kafka in a temporary services
    dir, on free ports, with the installed jars): stopping it disturbs no one else."""

    def __init__(self, directory: Path):
        port, controller = free_port(), free_port()
        shared = Path(os.environ.get("TASKFLOW_SERVICES_DIR") or ROOT / ".services")
        self.env = {**os.environ, "TASKFLOW_SERVICES_DIR": str(directory), "TASKFLOW_KAFKA_PORT": str(port),
                    "TASKFLOW_KAFKA_CONTROLLER_PORT": str(controller)}
        if (shared / "kafka" / "libs" / ".version").exists():
            self.env["TASKFLOW_KAFKA_LIBS"] = str(shared / "kafka" / "libs")
        self.bootstrap = f"127.0.0.1:{port}"

    def _services(self, command: str) -> None:
        done = subprocess.run([str(ROOT / "scripts" / "services"), command], env=self.env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr

    def start(self) -> None:
        self._services("start-kafka")

    def stop(self) -> None:
        self._services("stop-kafka")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    service_url("KAFKA_BOOTSTRAP_SERVERS")  # skip (or fail) like every Kafka test without the services
    private = PrivateBroker(tmp_path / "services")
    private.start()
    yield private
    private.stop()


def test_kafka_stopped_and_restarted_during_a_relay_loses_and_duplicates_nothing(broker, database, tmp_path):
    values = {**kafka_values(tmp_path, database, broker.bootstrap), "projector_poll_seconds": 0.02}
    system = build_system(settings_of(values))
    try:
        relay = system.relay
        assert relay is not None
        first_head = generate_history(system.app)
        # Many small, slowed-down batches: the broker stops in the middle of them.
        relay.batch_size = 5
        record = relay.record

        def record_slowly(position: int) -> None:
            record(position)
            time.sleep(0.05)

        relay.record = record_slowly  # type: ignore[method-assign]
        for consumer in consumers_of(system):
            consumer.consumer_config = FAST_GROUP
        relay.start()
        system.projector.start()
        wait_until(lambda: relay.status.position >= 30, 30, "the relay to get going")
        broker.stop()
        assert system.store.position(relay.name) < first_head  # stopped in the middle of the relay
        head = generate_history(system.app, seed=8)  # more events while Kafka is down
        time.sleep(1)
        broker.start()

        wait_until(lambda: all(system.store.position(c.name) >= head for c in consumers_of(system)), 60,
                   "the projections to reach the head after the restart")
        assert system.store.position(relay.name) == head
        assert dump(system.store) == reference(system, tmp_path / "ref.db")
        events = events_of(read_topic(broker.bootstrap, values["kafka_topic"]))
        assert sorted({int(header(r.headers, "position")) for r in events}) == list(range(1, head + 1))
    finally:
        system.close()


# --- read-your-writes through Kafka ------------------------------------------------------------


def test_a_read_with_the_writes_position_sees_the_write_through_kafka(system):
    with TestClient(build_http_app(system), raise_server_exceptions=False) as client:
        ready = client.get("/ready").json()["data"]
        assert ready["checks"]["kafka"] == "ok"
        owner = signed_in(client, name="Owner")
        # The first read also waits for the consumer groups to form: allow it the longest wait.
        first = client.get("/api/v1/projects", headers={**owner.headers, "X-Consistency-Position": str(owner.position),
                                                         "X-Consistency-Timeout-Ms": "10000"})
        assert first.status_code == 200, first.text

        created = create_project(owner, name="Through Kafka")
        position = created["meta"]["position"]
        read = owner.read(f"/api/v1/projects/{created['data']['id']}", position)
        assert read.status_code == 200, read.text
        assert read.json()["data"]["name"] == "Through Kafka"
        assert int(read.headers["X-Projection-Position"]) >= position

        renamed = owner.patch(f"/api/v1/projects/{created['data']['id']}", json={"name": "Renamed"})
        assert renamed.status_code == 200, renamed.text
        again = owner.read(f"/api/v1/projects/{created['data']['id']}", renamed.json()["meta"]["position"])
        assert again.json()["data"]["name"] == "Renamed"
    # Every projection (search too) was fed by Kafka, not by following the log.
    assert {r.name for r in consumers_of(system)} == {p.name for p in all_projections()} | {"search"}


# --- a worker stuck inside kafka-python ----------------------------------------------------------

STUCK_WORKER = """
import sys, threading
from infra.kafka_consumer import KafkaProjectionConsumer, KafkaProjector
from infra.sqlite_readmodels import SQLiteReadModelStore
from projections.registry import all_projections


class NeverReturns(KafkaProjectionConsumer):
    def poll_once(self, timeout_ms=200):  # as kafka-python's poll did, looking up its coordinator
        threading.Event().wait()


projection = next(p for p in all_projections() if p.name == "tasks")
worker = NeverReturns(projection, SQLiteReadModelStore(sys.argv[1]), None, "127.0.0.1:1")
projector = KafkaProjector([worker])
projector.exit_when_stuck(float(sys.argv[2]))
projector.start()
threading.Event().wait(30)
print("still running")
"""


def test_a_projector_process_whose_worker_never_comes_back_from_kafka_exits_to_be_restarted(tmp_path):
    process = subprocess.run([sys.executable, "-c", STUCK_WORKER, str(tmp_path / "read.db"), "1"], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert process.returncode == EXIT_STUCK, (process.returncode, process.stdout, process.stderr)
    assert "stuck inside the Kafka client" in process.stderr
    assert "still running" not in process.stdout
