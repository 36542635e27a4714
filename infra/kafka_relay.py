"""The relay: publishes every event of the event store to a Kafka topic, in position order, so
projection workers in consumer groups can share the work (``taskflow relay``).

It follows the notification log like the projector does (polling, woken after each save when it
runs in the writer's process). What goes on the topic:

- one record per event: key = the aggregate's id (so an aggregate's events share a partition, in
  order), value = the stored event as compact JSON (see ``encode_event``), headers ``kind: event``,
  ``type`` (the event's topic), ``position`` and the who/why metadata;
- a watermark in EVERY partition after each batch: headers ``kind: watermark`` and ``position``,
  value = the relayed position. A watermark W in a partition means every event at or below W that
  belongs to that partition lies before it, so a consumer knows that a quiet partition holds
  nothing older still pending. Watermarks are also published when the relay starts, and at most
  every ``watermark_interval`` when the relayed position moved without one; an idle relay adds
  nothing to the topic (the last batch's watermarks cover all it relayed, and the topic is kept
  forever).

Each batch and its watermarks are one Kafka transaction (transactional, hence idempotent, producer;
``acks=all``); consumers read committed records only, so a batch is visible entirely or not at all,
in order. The relay records how far it got (``projection_tracking`` row ``relay:<topic>``) only
after Kafka committed the batch: a crash in between publishes the batch again, which consumers
recognise by position and skip. A second relay with the same topic fences the first (same
transactional id), so two never interleave half-batches.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from projections.store import ReadModelStore

log = logging.getLogger("taskflow.relay")
# kafka-python logs every connection, fetch and group step at INFO: hundreds of lines a minute.
logging.getLogger("kafka").setLevel(logging.WARNING)

DEFAULT_TOPIC = "taskflow.events"
EVENT = b"event"
WATERMARK = b"watermark"
_METADATA_HEADERS = ("actorId", "requestId", "correlationId", "causationId")

# Quick reconnects after a broker restart; kafka-python's default backoff grows to 30 s.
CLIENT_DEFAULTS: dict[str, Any] = {"reconnect_backoff_max_ms": 1000, "request_timeout_ms": 10_000}


def encode_event(n: Notification) -> bytes:
    """The stored event as compact JSON; ``decode_event`` gives back the Notification, which
    ``Mapper.to_domain_event`` turns into the domain event."""
    return json.dumps(
        {
            "position": n.id,
            "originator_id": str(n.originator_id),
            "originator_version": n.originator_version,
            "topic": n.topic,
            "state": base64.b64encode(n.state).decode("ascii"),
        },
        separators=(",", ":"),
    ).encode()


def decode_event(value: bytes) -> Notification:
    d = json.loads(value)
    return Notification(
        id=d["position"],
        originator_id=UUID(d["originator_id"]),
        originator_version=d["originator_version"],
        topic=d["topic"],
        state=base64.b64decode(d["state"]),
    )


def header(headers: list[tuple[str, bytes]], name: str) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int) -> None:
    """Create the topic if missing: ``partitions`` partitions, the broker's replication factor,
    and no retention limit (the topic is a replayable feed: a rebuilt projection reads it all)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="taskflow-admin", **CLIENT_DEFAULTS)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, topic_configs={"retention.ms": "-1"})])
        log.info("created topic", extra={"topic": topic, "partitions": partitions})
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


class KafkaCheck:
    """The readiness check: the broker answers a metadata request (one admin client, kept)."""

    def __init__(self, bootstrap_servers: str):
        self.bootstrap_servers = bootstrap_servers
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._admin is None:
                self._admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers, client_id="taskflow-ready",
                    bootstrap_timeout_ms=2000, reconnect_backoff_max_ms=500, request_timeout_ms=2000,
                )
            self._admin.describe_cluster()

    def close(self) -> None:
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None


@dataclass
class RelayStatus:
    state: str = "starting"  # starting | running | failing | stopped
    last_error: str | None = None
    published_events: int = 0
    position: int = 0  # what the relay has published and recorded


class KafkaRelay:
    def __init__(
        self,
        recorder: ApplicationRecorder,
        store: ReadModelStore,
        bootstrap_servers: str,
        *,
        mapper: Mapper[Any] | None = None,
        topic: str = DEFAULT_TOPIC,
        partitions: int = 6,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        watermark_interval: float = 1.0,
        linger: float = 0.005,
        producer_config: dict[str, Any] | None = None,
    ):
        self.recorder = recorder
        self.store = store
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.partitions = partitions
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.watermark_interval = watermark_interval
        self.linger = linger
        self.producer_config = producer_config or {}
        self.name = f"relay:{topic}"
        self.status = RelayStatus()
        # Metadata headers need the event's state as plain JSON (no cipher, no compressor).
        self._plain_state = mapper is None or (mapper.cipher is None and mapper.compressor is None)
        self._producer: KafkaProducer | None = None
        self._published = 0  # highest position Kafka has committed in this process
        self._last_watermark = 0.0  # when
        self._watermarked = -1  # the position it carried
        self._recorded: int | None = None  # the recorded position, once read
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        store.ensure_tables(self.name, 1, ())

    # --- one batch --------------------------------------------------------------------------
    def step(self) -> int:
        """Publish the next batch (with watermarks), or only watermarks when they are due;
        returns how many events were published."""
        # The recorded position is read once, then kept: only this relay advances it (another
        # relay with the same topic fences this one, whose next commit then fails and re-reads).
        began = time.perf_counter()
        if self._recorded is None:
            self._recorded = self.store.position(self.name)
        start = self._recorded
        self.status.position = start
        # The event store's table lock makes positions commit in order, so what a select returns
        # is a gap-free run: no need to bound it by the head first (one round trip less a batch).
        notifications = self.recorder.select_notifications(
            start=start, limit=self.batch_size, inclusive_of_start=False
        )
        position = notifications[-1].id if notifications else max(start, self._published)
        if not notifications and (position <= self._watermarked
                                  or time.monotonic() - self._last_watermark < self.watermark_interval):
            return 0
        selected = time.perf_counter()
        self._publish(notifications, position)
        committed = time.perf_counter()
        self._published = max(self._published, position)
        self._last_watermark, self._watermarked = time.monotonic(), position
        if notifications:
            self.record(position)
            self.status.published_events += len(notifications)
        # Where a batch's time goes (LOG_LEVEL=DEBUG): read the log, Kafka transaction, record the position.
        log.debug("relay batch", extra={"events": len(notifications), "position": position,
                                        "selectMs": round((selected - began) * 1000, 1),
                                        "kafkaMs": round((committed - selected) * 1000, 1),
                                        "recordMs": round((time.perf_counter() - committed) * 1000, 1)})
        self.status.state, self.status.last_error = "running", None
        return len(notifications)

    def _publish(self, notifications: list[Notification], watermark: int) -> None:
        producer = self._connect()
        try:
            producer.begin_transaction()
            for n in notifications:
                producer.send(self.topic, key=str(n.originator_id).encode(), value=encode_event(n),
                              headers=self._headers(n))
            mark = str(watermark).encode()
            for partition in sorted(producer.partitions_for(self.topic)):
                producer.send(self.topic, value=mark, partition=partition,
                              headers=[("kind", WATERMARK), ("position", mark)])
            # Flushes every record and fails if any was not acknowledged (acks=all).
            producer.commit_transaction()
        except BaseException:
            self._disconnect()  # a new producer aborts what this one left open (same transactional id)
            self._recorded = None  # fenced by another relay, perhaps: read where things stand
            raise

    def record(self, position: int) -> None:
        """Kafka has committed every event up to ``position``: remember it."""
        self._recorded = None  # if this fails, read the position again
        with self.store.transaction(self.name) as tx:
            if position > tx.position:
                tx.advance(position)
            recorded = max(position, tx.position)
        self._recorded = self.status.position = recorded

    def _headers(self, n: Notification) -> list[tuple[str, bytes]]:
        headers = [("kind", EVENT), ("type", n.topic.encode()), ("position", str(n.id).encode())]
        if self._plain_state:
            try:
                metadata = json.loads(n.state).get("metadata") or {}
            except (ValueError, AttributeError):
                metadata = {}
            headers += [(k, str(metadata[k]).encode()) for k in _METADATA_HEADERS if metadata.get(k)]
        return headers

    def _connect(self) -> KafkaProducer:
        if self._producer is None:
            ensure_topic(self.bootstrap_servers, self.topic, self.partitions)
            producer = KafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                client_id=f"taskflow-{self.name}",
                transactional_id=f"taskflow-relay-{self.topic}",
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                # A transaction begun right after the previous commit finds the broker still writing
                # that commit's markers (CONCURRENT_TRANSACTIONS); kafka-python then sleeps
                # retry_backoff_ms before adding partitions again. Its 100 ms default put 100-200 ms
                # into the relay's lag under steady load; the Java client waits 20 ms in that case.
                retry_backoff_ms=10,
                max_block_ms=10_000,
                delivery_timeout_ms=30_000,
                transaction_timeout_ms=15_000,
                allow_auto_create_topics=False,
                **{**CLIENT_DEFAULTS, **self.producer_config},
            )
            try:
                producer.init_transactions()
            except BaseException:
                producer.close(timeout=1)
                raise
            self._producer = producer
        return self._producer

    def _disconnect(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                producer.close(timeout=1)
            except Exception:  # closing a broken producer may fail too; it is dropped either way
                log.debug("producer close failed", exc_info=True)

    # --- the background loop -----------------------------------------------------------------
    def catch_up(self) -> None:
        while self.step():
            pass

    def wake(self, _position: int | None = None) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._disconnect()
        self.status.state = "stopped"

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                published = self.step()
                backoff = 0.0
                if published >= self.batch_size:
                    continue  # a backlog: keep going
                if published:
                    # Let the next few saves gather: one Kafka transaction for several commands
                    # costs far less than one each.
                    self._stop.wait(self.linger)
                    continue
            except Exception as error:  # Kafka or the database is down: report it and retry
                self.status.state, self.status.last_error = "failing", repr(error)
                log.error("relay failed", extra={"topic": self.topic, "position": self.status.position},
                          exc_info=error)
                backoff = min(max(backoff * 2, 0.5), 5.0)
            if self._wake.wait(backoff or min(self.poll_interval, self.watermark_interval)) and not backoff:
                self._stop.wait(self.linger)
