"""Projection catch-up into PostgreSQL: events/s of the tasks projection replaying a generated
history from position 0, beside a raw psycopg ``executemany`` inserting the same final rows (same
server, same run).

    .venv/bin/python -m bench.bench_projection_pg --database-url postgresql://... [--events 50000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid

import psycopg

from bench.bench_write_pg import fresh_database
from bench.common import report
from commands.context import CommandContext
from domain.base import stamped
from domain.project import Project
from domain.task import Task
from infra.composition import build_system
from infra.postgres_readmodels import PostgresReadModelStore
from infra.projector import ProjectionRunner
from infra.settings import Settings
from projections.tasks import TASKS, TasksProjection


def generate(system, events: int) -> None:
    """Tasks created and then moved, renamed and reprioritised, saved 1,000 events a transaction."""
    rnd = random.Random(1)
    owner = uuid.uuid4()
    meta = CommandContext(owner, "bench", "bench", "bench").metadata()
    project = Project.create(owner, "Bench")
    system.app.save(*stamped(project.collect_events(), meta))
    tasks: list[Task] = []
    pending: list = []
    written = 1
    while written < events:
        if not tasks or rnd.random() < 0.3:
            task = Task.create(project, owner, f"Task {len(tasks)}", priority=rnd.choice(["low", "high"]))
            tasks.append(task)
        else:
            task = rnd.choice(tasks)
            if rnd.random() < 0.5:
                task.move(project, rnd.choice(project.status_names))
            else:
                task.update(title=f"Renamed {written}", priority=rnd.choice(["low", "medium", "urgent"]))
        new = stamped(task.collect_events(), meta)
        pending += new
        written += len(new)
        if len(pending) >= 1000:
            system.app.save(*pending)
            pending = []
    if pending:
        system.app.save(*pending)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    if not args.database_url:
        sys.exit("needs --database-url (or DATABASE_URL)")

    url = fresh_database(args.database_url)
    system = build_system(Settings(database_url=url, redis_url=None, elasticsearch_url=None,
                                   kafka_bootstrap_servers=None, data_dir="/tmp/taskflow-bench-data"))
    generate(system, args.events)
    head = system.app.head_position()

    store = PostgresReadModelStore(fresh_database(args.database_url))
    runner = ProjectionRunner(TasksProjection(), store, system.app.recorder, system.app.mapper, batch_size=1000)
    started = time.perf_counter()
    runner.catch_up()
    projection_seconds = time.perf_counter() - started
    rows = store.find(TASKS, {})

    # Baseline: the same final rows, inserted with one executemany in one transaction.
    columns = [c.name for c in TASKS.columns]
    with psycopg.connect(store.pool.conninfo) as conn:
        conn.execute("CREATE TABLE raw_tasks (LIKE tasks INCLUDING ALL)")
        values = [[psycopg.types.json.Jsonb(r[c]) if c in ("assignee_ids", "labels") else r[c] for c in columns]
                  for r in rows]
        started = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO raw_tasks ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})", values
            )
        conn.commit()
        raw_seconds = time.perf_counter() - started

    report("projection_pg", [
        {"figure": f"tasks projection catch-up ({head} events, {len(rows)} rows)", "value": head / projection_seconds,
         "unit": "events/s", "baseline": len(rows) / raw_seconds, "baseline_name": "raw executemany of the final rows, rows/s"},
    ])
    store.close()
    system.close()


if __name__ == "__main__":
    main()
