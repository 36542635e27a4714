"""Event distribution through Kafka on the real broker and PostgreSQL, beside same-run baselines:

- relay events/s over a generated history (~20,000 events), beside a bare kafka-python producer
  sending the same keys and payloads (acks=all, idempotent, no transactions, no database);
- projection events/s through Kafka (one projection; all five in one process), beside the same
  projections following the event log;
- end-to-end lag from a command's response to its visibility in the read API (the
  X-Projection-Position a read of the tasks list reports, sampled every 10 ms) at 100 and 300
  commands/s against `taskflow serve` on the production backends, with Kafka (relay and consumers
  in the server's process) and with the log-following projector.

    eval "$(scripts/services env)"
    .venv/bin/python -m bench.bench_kafka [--events 20000] [--rates 100,300] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from bench.common import RESULTS, free_port, report, server, server_log_path
from infra.composition import build_system
from infra.kafka_consumer import KafkaProjectionConsumer
from infra.kafka_relay import encode_event, ensure_topic
from infra.postgres_readmodels import PostgresReadModelStore
from infra.projector import ProjectionRunner, Projector
from infra.settings import Settings
from projections.registry import all_projections
from tests.integration.history import generate_history

PASSWORD = "benchmark-password"


@contextmanager
def database(admin_url: str) -> Iterator[str]:
    name = f"taskflow_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def history(app: Any, events: int) -> int:
    """About ``events`` events, written by four concurrent writers (each its own users)."""
    per_writer = events // 4
    tasks = per_writer // 6
    writers = [
        threading.Thread(target=generate_history, args=(app,),
                         kwargs={"seed": seed, "users": 5, "projects": 3, "tasks": tasks,
                                 "changes": per_writer - tasks - 30})
        for seed in range(1, 5)
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    return app.head_position()


def bare_producer_rate(kafka: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> float:
    ensure_topic(kafka, topic, 6)
    producer = KafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True, linger_ms=2)
    producer.partitions_for(topic)
    started = time.perf_counter()
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return len(payloads) / elapsed


def bare_consumer_rate(kafka: str, topic: str) -> float:
    consumer = KafkaConsumer(bootstrap_servers=kafka, isolation_level="read_committed", enable_auto_commit=False,
                             max_poll_records=500)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    count = 0
    started = time.perf_counter()
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        for records in consumer.poll(timeout_ms=200).values():
            count += len(records)
    elapsed = time.perf_counter() - started
    consumer.close(autocommit=False)
    return count / elapsed


def run_until(consumers: list[KafkaProjectionConsumer], head: int) -> float:
    """Seconds until every consumer (each in its own thread) has applied ``head``."""
    started = time.perf_counter()
    for c in consumers:
        c.start()
    while any(c.store.position(c.name) < head for c in consumers):
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    for c in consumers:
        c.stop()
    return elapsed


def follow_log(runners: list[ProjectionRunner]) -> float:
    """Seconds for the in-process projector to take these runners to the head."""
    projector = Projector(runners)
    started = time.perf_counter()
    while projector.run_once():
        pass
    return time.perf_counter() - started


def delete_topics(kafka: str, topics: list[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    try:
        admin.delete_topics(topics)
    finally:
        admin.close()


def throughput(admin_url: str, kafka: str, events: int) -> list[dict[str, Any]]:
    topic = f"taskflow-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, database(admin_url) as events_db:
        settings = Settings(TASKFLOW_DATA_DIR=Path(tmp), DATABASE_URL=events_db, KAFKA_BOOTSTRAP_SERVERS=kafka,
                            KAFKA_TOPIC=topic, KAFKA_GROUP_PREFIX=f"{topic}-", ARGON2_TIME_COST=1,
                            ARGON2_MEMORY_KIB=64, REDIS_URL=None, ELASTICSEARCH_URL=None)
        system = build_system(settings, projection_names=[])
        try:
            started = time.perf_counter()
            head = history(system.app, events)
            print(f"history: {head} events in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            notifications = system.app.recorder.select_notifications(start=1, limit=head + 1)
            bare_produce = bare_producer_rate(
                kafka, f"{topic}-bare", [(str(n.originator_id).encode(), encode_event(n)) for n in notifications]
            )
            assert system.relay is not None
            started = time.perf_counter()
            system.relay.catch_up()
            relay = head / (time.perf_counter() - started)
            bare_consume = bare_consumer_rate(kafka, topic)

            # Each measurement writes its read models into a database of its own.
            recorder, mapper = system.app.recorder, system.app.mapper
            tasks = next(p for p in all_projections() if p.name == "tasks")
            with database(admin_url) as one, database(admin_url) as five:
                store_one, store_five = PostgresReadModelStore(one), PostgresReadModelStore(five, max_size=10)
                tasks_kafka = head / run_until(
                    [KafkaProjectionConsumer(tasks, store_one, mapper, kafka, topic=topic,
                                             group_prefix=f"{topic}-one-")], head)
                all_kafka = head / run_until(
                    [KafkaProjectionConsumer(p, store_five, mapper, kafka, topic=topic, group_prefix=f"{topic}-five-")
                     for p in all_projections()], head)
                store_one.close()
                store_five.close()
            with database(admin_url) as one, database(admin_url) as five:
                store_one, store_five = PostgresReadModelStore(one), PostgresReadModelStore(five)
                tasks_log = head / follow_log([ProjectionRunner(tasks, store_one, recorder, mapper)])
                all_log = head / follow_log([ProjectionRunner(p, store_five, recorder, mapper)
                                             for p in all_projections()])
                store_one.close()
                store_five.close()
        finally:
            system.close()
            delete_topics(kafka, [topic, f"{topic}-bare"])
    return [
        {"figure": f"relay events/s ({head} events)", "value": relay, "unit": "events/s",
         "baseline": bare_produce, "baseline_name": "bare producer, same payloads"},
        {"figure": "tasks projection via Kafka events/s", "value": tasks_kafka, "unit": "events/s",
         "baseline": tasks_log, "baseline_name": "tasks following the log"},
        {"figure": "5 projections via Kafka events/s (each)", "value": all_kafka, "unit": "events/s",
         "baseline": all_log, "baseline_name": "5 following the log, 1 thread"},
        {"figure": "bare consumer reading the topic", "value": bare_consume, "unit": "records/s",
         "baseline": bare_produce, "baseline_name": "bare producer"},
    ]


def lag(admin_url: str, kafka: str | None, redis_url: str | None, rate: float, seconds: float) -> dict[str, float]:
    """Lag from each create-task response to the read API reporting its position, at ``rate``
    commands/s against `taskflow serve` (with Kafka when ``kafka`` is given)."""
    unique = f"taskflow-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, database(admin_url) as db:
        port = free_port()
        env = {"TASKFLOW_DATA_DIR": tmp, "DATABASE_URL": db, "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "64",
               "RATE_LIMIT_PER_MINUTE": "0", "LOG_LEVEL": "WARNING", "ELASTICSEARCH_URL": "",
               "REDIS_URL": redis_url or "", "REDIS_PREFIX": f"{unique}:",
               "KAFKA_BOOTSTRAP_SERVERS": kafka or "", "KAFKA_TOPIC": unique, "KAFKA_GROUP_PREFIX": f"{unique}-"}
        try:
            with server([sys.executable, "-m", "infra.cli", "serve", "--port", str(port)], port, env) as base:
                return _drive(base, base, rate, seconds)
        finally:
            if kafka:
                delete_topics(kafka, [unique])


def lag_separate(admin_url: str, kafka: str, redis_url: str | None, rate: float, seconds: float,
                 trace: bool = False, warmup: float = 0.0) -> dict[str, float]:
    """The same lag, with each part in its own process as in production: write API (2 workers),
    read API, relay, and one projector process consuming Kafka. ``trace``: the relay and the
    projector log each batch's stage timings (LOG_LEVEL=DEBUG), summarised after the run."""
    unique = f"taskflow-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, database(admin_url) as db:
        env = {**os.environ, "TASKFLOW_DATA_DIR": tmp, "DATABASE_URL": db, "ARGON2_TIME_COST": "1",
               "ARGON2_MEMORY_KIB": "64", "RATE_LIMIT_PER_MINUTE": "0", "LOG_LEVEL": "WARNING",
               "ELASTICSEARCH_URL": "", "REDIS_URL": redis_url or "", "REDIS_PREFIX": f"{unique}:",
               "KAFKA_BOOTSTRAP_SERVERS": kafka, "KAFKA_TOPIC": unique, "KAFKA_GROUP_PREFIX": f"{unique}-"}
        cli = [sys.executable, "-m", "infra.cli"]
        RESULTS.mkdir(exist_ok=True)
        logs = {name: RESULTS / f"kafka_separate_{name}.log" for name in ("relay", "project")}
        print(f"relay and projector logs: {logs['relay']}, {logs['project']}", file=sys.stderr)
        follower_env = {**env, "LOG_LEVEL": "DEBUG"} if trace else env
        workers = [subprocess.Popen([*cli, "relay"], env=follower_env, stdout=subprocess.DEVNULL,
                                    stderr=logs["relay"].open("w")),
                   subprocess.Popen([*cli, "project", "users", "projects", "tasks"], env=follower_env,
                                    stdout=subprocess.DEVNULL, stderr=logs["project"].open("w"))]
        write_port, read_port = free_port(), free_port()
        try:
            with server([*cli, "write-api", "--port", str(write_port), "--workers", "2"], write_port, env,
                        log=server_log_path("kafka_separate_write")) as write, \
                    server([*cli, "read-api", "--port", str(read_port)], read_port, env,
                           log=server_log_path("kafka_separate_read")) as read:
                return _drive(write, read, rate, seconds, relayed=(db, f"relay:{unique}"), warmup=warmup)
        except RuntimeError:
            for name, path in logs.items():  # what the relay and the projector said
                print(f"--- {name} log (last lines)", *path.read_text().splitlines()[-15:], sep="\n", file=sys.stderr)
            raise
        finally:
            for process in workers:
                process.terminate()
                process.wait(timeout=15)
            delete_topics(kafka, [unique])
            if trace:
                summarise_stages(logs)


def summarise_stages(logs: dict[str, Path]) -> None:
    """p50/p99 of each stage the relay and the projector logged per batch (see --trace)."""
    stages: dict[str, list[float]] = {}
    for path in logs.values():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") not in ("relay batch", "consumer batch") or not entry.get("events", 1):
                continue
            for key, value in entry.items():
                if key.endswith("Ms"):
                    stages.setdefault(f"{entry['msg']} {key}", []).append(value)
    for name, values in sorted(stages.items()):
        values.sort()
        print(f"  {name:<32} n={len(values):<5} p50 {statistics.median(values):6.1f} ms  "
              f"p99 {values[max(0, int(len(values) * 0.99) - 1)]:6.1f} ms  max {values[-1]:6.1f} ms", file=sys.stderr)


def sample_positions(read_base: str, watch: str, auth: dict[str, str], relayed: tuple[str, str] | None,
                     bench: Any) -> None:
    """(time.monotonic(), position) of the watched read about every 10 ms, and of the relay's
    recorded position, until the bench sends the last position to wait for and it shows."""
    samples: list[tuple[float, int]] = []
    relay_samples: list[tuple[float, int]] = []
    tracking = psycopg.connect(relayed[0], autocommit=True) if relayed else None
    last: int | None = None
    with httpx.Client(base_url=read_base, timeout=30, headers=auth) as client:
        bench.send("sampling")
        while last is None or samples[-1][1] < last:
            r = client.get(watch)
            samples.append((time.monotonic(), int(r.headers["X-Projection-Position"])))
            if tracking is not None:
                row = tracking.execute("SELECT position FROM projection_tracking WHERE name = %s",
                                       (relayed[1],)).fetchone()
                relay_samples.append((time.monotonic(), row[0] if row else 0))
            if last is None and bench.poll():
                last = bench.recv()
            time.sleep(0.01)  # ~100 reads/s: enough resolution, little added load
    if tracking is not None:
        tracking.close()
    bench.send((samples, relay_samples))


def _drive(base: str, read_base: str, rate: float, seconds: float,
           relayed: tuple[str, str] | None = None, warmup: float = 0.0) -> dict[str, float]:
    """``relayed``: (database, relay name) to also sample the relay's recorded position, which
    splits the lag into command -> committed to Kafka, and Kafka -> read model."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    httpx.post(f"{base}/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Bench"}).raise_for_status()
    token = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
    auth = {"Authorization": f"Bearer {token['data']['accessToken']}"}
    project = httpx.post(f"{base}/api/v1/projects", json={"name": "Bench"}, headers=auth).json()
    watch = f"/api/v1/projects/{project['data']['id']}/tasks?perPage=1"
    # The first read waits for the consumer groups to form (with Kafka).
    for _ in range(10):  # the first read waits for the consumer groups to form (with Kafka)
        first = httpx.get(f"{read_base}{watch}", timeout=30, headers={
            **auth, "X-Consistency-Position": str(project["meta"]["position"]), "X-Consistency-Timeout-Ms": "10000"})
        if first.status_code == 200:
            break
    if first.status_code != 200:
        raise RuntimeError(f"the read API never caught up with the project: {first.status_code} {first.text}")

    # The first ``warmup`` seconds of load run the same way but are not measured (the servers'
    # threads, connections and caches start cold; a warmed system is what runs at this rate).
    warm = int(rate * warmup)
    total = warm + int(rate * seconds)
    counter = iter(range(total))
    responses: list[tuple[float, int]] = []
    errors = [0]
    lock = threading.Lock()
    started = 0.0  # set once the sampler runs

    def command() -> None:
        with httpx.Client(base_url=base, timeout=30, headers=auth) as client:
            for i in counter:
                time.sleep(max(0.0, started + i / rate - time.perf_counter()))
                r = client.post(f"/api/v1/projects/{project['data']['id']}/tasks", json={"title": f"task {i}"})
                done = time.monotonic()  # the sampler's clock
                with lock:
                    if r.status_code != 201:
                        errors[0] += 1
                    elif i >= warm:
                        responses.append((done, r.json()["meta"]["position"]))

    # The sampler runs in a process of its own: beside the 32 command threads it waited for this
    # process's interpreter lock (and garbage collections), which showed up as lag.
    spawn = multiprocessing.get_context("spawn")
    to_sampler, from_bench = spawn.Pipe()
    sampler = spawn.Process(target=sample_positions, args=(read_base, watch, auth, relayed, from_bench))
    sampler.start()
    to_sampler.recv()  # sampling
    started = time.perf_counter() + 0.2
    workers = [threading.Thread(target=command) for _ in range(32)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started - warmup
    to_sampler.send(max((p for _, p in responses), default=0))  # sample until this position shows
    samples, relay_samples = to_sampler.recv()
    sampler.join(timeout=10)

    lags = []
    for done, position in responses:
        seen = next((t for t, p in samples if t >= done and p >= position), None)
        if seen is not None:
            lags.append((seen - done) * 1000)
    lags.sort()
    to_kafka = sorted(
        (seen - done) * 1000 for done, position in responses
        if (seen := next((t for t, p in relay_samples if t >= done and p >= position), None)) is not None
    )
    gaps = sorted((b - a) * 1000 for (a, _), (b, _) in zip(samples, samples[1:]))
    if gaps:
        # The lag is known to within one gap: a slow sampler (its process's GIL, a GC pause)
        # shows up here, not as the system's lag.
        print(f"  read API sampled every: p50 {statistics.median(gaps):.0f} ms, "
              f"p99 {gaps[max(0, int(len(gaps) * 0.99) - 1)]:.0f} ms, max {gaps[-1]:.0f} ms", file=sys.stderr)
    if to_kafka:
        print(f"  of which command -> committed to Kafka by the relay: p50 {statistics.median(to_kafka):.0f} ms, "
              f"p99 {to_kafka[max(0, int(len(to_kafka) * 0.99) - 1)]:.0f} ms", file=sys.stderr)
    return {
        "rate": len(responses) / elapsed,
        "errors": errors[0],
        "p50_ms": statistics.median(lags),
        "p99_ms": lags[max(0, int(len(lags) * 0.99) - 1)],
        "measured": len(lags),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rates", default="100,300", help="command rates (per second) to measure the lag at")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--separate-only", action="store_true",
                        help="only the lag with separate processes (skips throughput and one-process runs)")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="seconds of load before the separate-process lag is measured (default 0)")
    parser.add_argument("--trace", action="store_true",
                        help="the relay and the projector log per-batch stage timings; print a summary")
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_URL")
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not admin_url or not kafka:
        sys.exit('needs DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS: eval "$(scripts/services env)" first')
    redis_url = os.environ.get("REDIS_URL") or None

    figures = [] if args.separate_only else throughput(admin_url, kafka, args.events)
    for rate in (float(r) for r in args.rates.split(",")):
        separate = lag_separate(admin_url, kafka, redis_url, rate, args.seconds, trace=args.trace,
                                warmup=args.warmup)
        print(f"@{rate:.0f}/s, separate processes: commands/s achieved {separate['rate']:.0f}, "
              f"lag p50 {separate['p50_ms']:.0f} ms, p99 {separate['p99_ms']:.0f} ms", file=sys.stderr)
        for quantile in ("p50_ms", "p99_ms"):
            warmed = f", after {args.warmup:g} s warm-up" if args.warmup else ""
            figures.append({"figure": f"command→read lag {quantile[:3]} via Kafka @{rate:.0f}/s, separate processes{warmed}",
                            "value": separate[quantile], "unit": "ms"})
        if args.separate_only:
            continue
        through_kafka = lag(admin_url, kafka, redis_url, rate, args.seconds)
        following_log = lag(admin_url, None, redis_url, rate, args.seconds)
        print(f"@{rate:.0f}/s: commands/s achieved {through_kafka['rate']:.0f} with Kafka, "
              f"{following_log['rate']:.0f} following the log; errors {through_kafka['errors']}/"
              f"{following_log['errors']}", file=sys.stderr)
        for quantile in ("p50_ms", "p99_ms"):
            figures.append({
                "figure": f"command→read lag {quantile[:3]} via Kafka @{rate:.0f}/s", "value": through_kafka[quantile],
                "unit": "ms", "baseline": following_log[quantile], "baseline_name": "log-following projector",
            })
    report("kafka_separate" if args.separate_only else "kafka", figures)


if __name__ == "__main__":
    main()
