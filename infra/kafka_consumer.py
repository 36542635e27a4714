"""Projection workers fed by Kafka (``taskflow project NAME...`` with KAFKA_BOOTSTRAP_SERVERS set).

Each projection is a consumer group, ``taskflow-projection-<name>``; its workers share the topic's
partitions and run the same projection code as the log-following projector. A worker applies what
one poll returned (a batch per partition) in ONE read-model transaction, which also records, for
each partition, the next offset and the highest position applied (``projection_partitions``):

- on assignment, a worker seeks to the offsets stored there (Kafka's committed offsets, written
  after commits, at most every second, for monitoring, are only a hint);
- inside the transaction, records below the stored offset were applied by an earlier batch (of
  this worker or of the previous owner of the partition: the stores lock the projection's
  tracking row, so a revoked worker's late batch commits before or after, never beside, the new
  owner's) and are skipped; so are events at or below the partition's position: the relay
  published them again after a crash;
- a watermark W in a partition raises its position to W: everything of that partition up to W
  came before it.

The position a projection reports (``projection_tracking``, what the read API waits on) is the
minimum of its partitions' positions: every event up to it has been applied, whichever partition
it went to. A partition with no row yet stands at that reported position (true by definition),
so a projection built by the log-following projector carries on from where it was. The search
projection is consumed the same way: its stores' transactions track partitions too (SQL search
stores in ``projection_partitions``, Elasticsearch in versioned tracking documents). With the Redis
row cache, a worker writes the rows it touched through after each commit, as the runner does.
A poison event is dead-lettered as by the log-following runner (``EventApplier``): the poll's
batch is applied again without it, its partition moves past it in the same commit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Mapper
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from infra.kafka_relay import CLIENT_DEFAULTS, DEFAULT_TOPIC, WATERMARK, decode_event, ensure_topic, header
from infra.projector import (
    EventApplier,
    ProjectionFailed,
    RunnerState,
    apply_with_dead_letters,
    prepare_store,
)
from infra.redis_cache import RowCache, TouchRecorder
from projections.base import Projection
from projections.store import PartitionedReadModelStore, PartitionPosition

log = logging.getLogger("taskflow.projector")

DEFAULT_GROUP_PREFIX = "taskflow-projection-"

# A healthy join ends within a few polls of every member; kafka-python 3.0.12 sometimes never
# finishes one (the member stays "rebalancing" with heartbeats off, is dropped by the broker after
# its session timeout and never notices: it keeps its old partitions and the group never splits
# them). A join this old is taken for stuck: the worker reconnects as a new member.
STUCK_JOIN_SECONDS = 15.0

# `taskflow project` exits with this status (EX_SOFTWARE) when a worker is stuck inside kafka-python
# (``KafkaProjector.exit_when_stuck``), after this long by default.
EXIT_STUCK = 70
STUCK_POLL_SECONDS = 120.0


class _Assignments(ConsumerRebalanceListener):
    """Pauses newly assigned partitions until the worker has sought them to the stored offsets
    (no I/O in the callback: kafka-python would only log a failure there)."""

    def __init__(self, worker: KafkaProjectionConsumer):
        self.worker = worker

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # Called as a (re-)join begins; on_partitions_assigned ends it.
        self.worker._joining_since = time.monotonic()
        self.worker._unpositioned.difference_update(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.worker._joining_since = None
        if assigned:
            self.worker._consumer_or_fail().pause(*assigned)
            self.worker._unpositioned.update(assigned)


class KafkaProjectionConsumer:
    """One projection, as one member of its consumer group."""

    def __init__(
        self,
        projection: Projection,
        store: PartitionedReadModelStore,
        mapper: Mapper[Any],
        bootstrap_servers: str,
        *,
        topic: str = DEFAULT_TOPIC,
        partitions: int = 6,
        group_prefix: str = DEFAULT_GROUP_PREFIX,
        batch_size: int = 500,
        cache: RowCache | None = None,
        consumer_config: dict[str, Any] | None = None,
    ):
        self.projection = projection
        self.store = store
        self.mapper = mapper
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.partitions = partitions
        self.group = f"{group_prefix}{projection.name}"
        self.batch_size = batch_size
        self.cache = cache
        self.consumer_config = consumer_config or {}
        self.status = RunnerState()
        self._topics = {t.encode() for t in projection.topics}
        self._consumer: KafkaConsumer | None = None
        self._unpositioned: set[TopicPartition] = set()
        self._uncommitted: dict[TopicPartition, int] = {}
        self._hinted = 0.0
        self._joining_since: float | None = None
        self.last_progress = time.monotonic()  # when the worker's loop last began a poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        prepare_store(projection, store, cache)

    @property
    def name(self) -> str:
        return self.projection.name

    # --- Kafka ------------------------------------------------------------------------------
    def connect(self) -> KafkaConsumer:
        if self._consumer is None:
            ensure_topic(self.bootstrap_servers, self.topic, self.partitions)
            config: dict[str, Any] = {
                **CLIENT_DEFAULTS,
                "client_id": f"taskflow-{self.name}",
                "group_id": self.group,
                "enable_auto_commit": False,
                "isolation_level": "read_committed",  # a relay batch is seen whole, or not at all
                "auto_offset_reset": "earliest",
                "allow_auto_create_topics": False,
                "max_poll_records": self.batch_size,
                "fetch_max_wait_ms": 100,
                # Quick failure detection and rebalances (6 s is the broker's default minimum).
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
                "max_poll_interval_ms": 60_000,
                **self.consumer_config,
            }
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap_servers, **config)
            # Join the group only once this client sees the topic's partitions: a group formed on
            # metadata without them assigns nothing until the next metadata refresh (minutes).
            deadline = time.monotonic() + 30
            while not consumer.partitions_for_topic(self.topic):
                if time.monotonic() > deadline:
                    consumer.close(autocommit=False)
                    raise TimeoutError(f"topic {self.topic} has no partitions in the broker's metadata")
                time.sleep(0.1)
            consumer.subscribe([self.topic], listener=_Assignments(self))
            self._consumer = consumer
        return self._consumer

    def _consumer_or_fail(self) -> KafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("not connected")
        return self._consumer

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close(autocommit=False)
        self._unpositioned.clear()
        self._joining_since = None

    def _seek_to_stored(self) -> None:
        consumer = self._consumer_or_fail()
        with self.store.transaction(self.name) as tx:
            stored = tx.partitions(self.topic)
            if self.cache is not None:  # the partitions' previous owner may have died before writing through
                self.cache.realign(self.name, tx.position, tx.commits)
        for tp in list(self._unpositioned):
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition].offset)
            else:
                consumer.seek_to_beginning(tp)
        consumer.resume(*self._unpositioned)
        self._unpositioned.clear()

    # --- one batch --------------------------------------------------------------------------
    def poll_once(self, timeout_ms: int = 200) -> int:
        """Poll once and apply what came; returns how many records were read."""
        consumer = self.connect()
        if self._joining_since is not None and time.monotonic() - self._joining_since > STUCK_JOIN_SECONDS:
            log.warning("consumer group join stuck; reconnecting as a new member",
                        extra={"projection": self.name, "seconds": round(time.monotonic() - self._joining_since)})
            self.close()
            consumer = self.connect()
        if self._unpositioned:
            self._seek_to_stored()
        batch = consumer.poll(timeout_ms=timeout_ms)
        batch = {tp: records for tp, records in batch.items() if records and tp not in self._unpositioned}
        if not batch:
            return 0
        polled, polled_ms = time.perf_counter(), time.time() * 1000
        try:
            self.apply(batch)
        except BaseException:
            # Nothing of the batch committed: read it again (after a backoff, if it failed).
            for tp, records in batch.items():
                if tp in consumer.assignment():
                    consumer.seek(tp, records[0].offset)
            raise
        if log.isEnabledFor(logging.DEBUG):
            # Where the lag goes (LOG_LEVEL=DEBUG): from the relay's send (the records' timestamps)
            # to this poll, and the apply (read-model transaction and cache write-through).
            oldest = min(records[0].timestamp for records in batch.values())
            log.debug("consumer batch", extra={
                "projection": self.name, "records": sum(len(records) for records in batch.values()),
                "partitions": len(batch), "sinceSendMs": round(polled_ms - oldest, 1),
                "applyMs": round((time.perf_counter() - polled) * 1000, 1)})
        return sum(len(records) for records in batch.values())

    def apply(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        # The topic's partitions (from metadata; none when unknown, and then nothing new is reported).
        partitions = set(self._consumer.partitions_for_topic(self.topic) or ()) if self._consumer else set()
        try:
            applier, tracked, reported, written = apply_with_dead_letters(
                lambda poisons: self._apply(batch, partitions, poisons))
        except ProjectionFailed as error:
            self.status.failing_position = error.position
            raise
        if self.cache is not None:
            self.cache.write_through(self.name, written, reported)
        applier.report()
        self.status.applied_events += applier.applied
        self.status.state, self.status.last_error, self.status.failing_position = "running", None, None
        self._commit_hint({TopicPartition(self.topic, p): tracked[p].offset for p in
                           {tp.partition for tp in batch} if p in tracked})

    def _apply(self, batch: dict[TopicPartition, list[ConsumerRecord]], partitions: set[int],
               poisons: dict[int, str]) -> tuple[EventApplier, dict[int, PartitionPosition], int, Any]:
        """The batch in one transaction (a poison event raises PoisonEvent: see apply_with_dead_letters)."""
        with self.store.transaction(self.name) as store_tx:
            tx = TouchRecorder(store_tx) if self.cache is not None else store_tx
            applier = EventApplier(self.projection, self.mapper, getattr(store_tx, "dead_letters", None), poisons)
            base = store_tx.position  # every event up to here is applied, in any partition
            tracked = store_tx.partitions(self.topic)
            moved: dict[int, PartitionPosition] = {}
            for tp, records in batch.items():
                at = tracked.get(tp.partition, PartitionPosition(0, base))
                offset, position = at.offset, max(at.position, base)
                for record in records:
                    if record.offset < offset:
                        continue  # an earlier batch applied it
                    offset = record.offset + 1
                    kind = header(record.headers, "kind")
                    if kind == WATERMARK:
                        position = max(position, int(record.value))
                        continue
                    event_position = int(header(record.headers, "position") or 0)
                    if event_position <= position:
                        continue  # published again by a relay that crashed before recording
                    if header(record.headers, "type") in self._topics:
                        applier.apply(decode_event(record.value), tx)
                    position = event_position
                if (offset, position) != (at.offset, at.position):
                    tracked[tp.partition] = moved[tp.partition] = PartitionPosition(offset, position)
            store_tx.track_partitions(self.topic, moved)
            # Every event up to the lowest partition position is applied, whichever partition it is in.
            reported = min(max(tracked[p].position, base) if p in tracked else base
                           for p in partitions | set(tracked)) if partitions else base
            if reported > base:
                store_tx.advance(reported)
            written = tx.final_rows() if isinstance(tx, TouchRecorder) else []
        return applier, tracked, reported, written

    def _commit_hint(self, offsets: dict[TopicPartition, int]) -> None:
        """Kafka's committed offsets follow the database's (at most every second), for lag
        monitoring with Kafka tools."""
        self._uncommitted.update(offsets)
        if self._consumer is None or not self._uncommitted or time.monotonic() - self._hinted < 1.0:
            return
        offsets, self._uncommitted, self._hinted = self._uncommitted, {}, time.monotonic()
        try:
            self._consumer.commit_async(
                {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()},
                callback=lambda _offsets, _response: None,
            )
        except Exception:  # a rebalance under way; the next batch commits again
            log.debug("offset hint not committed", exc_info=True)

    # --- the background loop -----------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self.last_progress = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"kafka-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        else:
            self.close()
        self.status.state = "stopped"

    def _run(self) -> None:
        backoff = 0.0
        try:
            while not self._stop.is_set():
                self.last_progress = time.monotonic()
                try:
                    self.poll_once()
                    backoff = 0.0
                    continue
                except ProjectionFailed as error:  # a handler failed on a backend: reported, retried slowly
                    log.error("projection failed", extra={"projection": self.name, "position": error.position},
                              exc_info=error)
                    backoff = min(max(backoff * 2, 0.5), 30.0)
                    self.status.last_error = repr(error)
                except Exception as error:  # Kafka or the database unavailable: retry soon
                    log.warning("projection worker cannot proceed; retrying",
                                extra={"projection": self.name, "error": repr(error)})
                    backoff = min(max(backoff * 2, 0.2), 2.0)
                    self.status.last_error = repr(error)
                self.status.state = "failing"
                self._stop.wait(backoff)
        finally:
            self.close()


class KafkaProjector:
    """The Kafka-fed projection workers of one process, one thread each (a KafkaConsumer is not
    thread-safe), with the same surface as the log-following ``Projector``."""

    def __init__(self, consumers: list[KafkaProjectionConsumer]):
        self.consumers = consumers
        self.runners = consumers
        self._exit_when_stuck: float | None = None

    def exit_when_stuck(self, seconds: float) -> None:
        """In a process of its own (``taskflow project``): exit with EXIT_STUCK when a worker has
        not come back from the Kafka client for ``seconds``, so that its supervisor restarts it.

        kafka-python 3.0.12 sometimes never returns from a poll (a consumer looking up its group
        coordinator without end while its IO thread spins); a thread cannot be interrupted, and
        every read model commits its Kafka positions with its rows, so a restart loses nothing."""
        self._exit_when_stuck = seconds

    def wake(self, position: int | None = None) -> None:
        """Nothing to wake: consumers wait on the topic, which the relay feeds."""

    def start(self) -> None:
        for consumer in self.consumers:
            consumer.start()
        if self._exit_when_stuck is not None:
            threading.Thread(target=self._watch, args=(self._exit_when_stuck,), name="kafka-watchdog",
                             daemon=True).start()

    def _watch(self, limit: float) -> None:
        while True:
            time.sleep(min(5.0, limit / 4))
            for consumer in self.consumers:
                stuck = time.monotonic() - consumer.last_progress
                if not consumer._stop.is_set() and stuck > limit:
                    log.critical("projection worker stuck inside the Kafka client; exiting to be restarted",
                                 extra={"projection": consumer.name, "seconds": round(stuck)})
                    logging.shutdown()
                    os._exit(EXIT_STUCK)  # a normal exit would wait for the stuck thread

    def stop(self) -> None:
        for consumer in self.consumers:
            consumer._stop.set()
        for consumer in self.consumers:
            consumer.stop()
