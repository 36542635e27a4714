"""Time travel on a large board: latency of ``GET /projects/{id}/tasks?asOf=`` (the project's
history replayed into a scratch store, then listed) beside today's list of the same board from
the live read model (same process, same run). Embedded (SQLite) and, given a URL, PostgreSQL.

    .venv/bin/python -m bench.bench_time_travel [--database-url postgresql://...] [--tasks 300] [--events 3000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from uuid import UUID

from fastapi.testclient import TestClient

from bench.bench_write_pg import fresh_database
from bench.common import report
from commands.context import CommandContext
from domain.base import stamped
from domain.task import Task
from infra.composition import build_http_app, build_system
from infra.settings import Settings


def _board(system, client: TestClient, tasks: int, events: int) -> tuple[dict[str, str], str, str, int]:
    """A project of ``tasks`` tasks and about ``events`` task events; (headers, project id, an
    instant halfway through the history, head position)."""
    email = "bench@example.com"
    client.post("/api/v1/users", json={"email": email, "password": "benchmark-pw", "name": "Bench"})
    token = client.post("/api/v1/auth/login", json={"email": email, "password": "benchmark-pw"}).json()["data"]
    headers = {"Authorization": f"Bearer {token['accessToken']}"}
    project_id = client.post("/api/v1/projects", json={"name": "Big board"}, headers=headers).json()["data"]["id"]
    app = system.app
    project = app.repository.get(UUID(project_id))
    owner = project.owner_id
    meta = CommandContext(owner, "bench", "bench", "bench").metadata()
    rnd = random.Random(3)
    board = [Task.create(project, owner, f"Task {n}", priority=rnd.choice(["low", "high"])) for n in range(tasks)]
    app.save(*stamped([e for t in board for e in t.collect_events()], meta))
    written, halfway = tasks, None
    while written < events:
        batch = []
        for _ in range(200):
            task = rnd.choice(board)
            if rnd.random() < 0.5:
                task.move(project, rnd.choice(project.status_names))
            else:
                task.update(title=f"Renamed {written}", priority=rnd.choice(["low", "medium", "urgent"]))
            batch += stamped(task.collect_events(), meta)
        app.save(*batch)
        written += len(batch)
        if halfway is None and written >= events // 2:
            halfway = batch[-1].timestamp.isoformat().replace("+00:00", "Z")
    return headers, project_id, halfway or "", app.head_position()


def _median_ms(client: TestClient, path: str, params: dict[str, str], headers: dict[str, str], runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path, params=params, headers=headers)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return statistics.median(timings) * 1000


def measure(settings: Settings, label: str, tasks: int, events: int, runs: int) -> list[dict]:
    system = build_system(settings)
    try:
        with TestClient(build_http_app(system)) as client:
            headers, project_id, halfway, head = _board(system, client, tasks, events)
            path = f"/api/v1/projects/{project_id}/tasks"
            wait = {**headers, "X-Consistency-Position": str(head), "X-Consistency-Timeout-Ms": "10000"}
            _median_ms(client, path, {"perPage": "100"}, wait, 1)  # the read model has caught up
            live = _median_ms(client, path, {"perPage": "100"}, headers, runs)
            past = _median_ms(client, path, {"perPage": "100", "asOf": halfway}, headers, runs)
            now = _median_ms(client, path, {"perPage": "100", "asOf": "2999-01-01T00:00:00Z"}, headers, runs)
    finally:
        system.close()
    baseline = {"baseline": live, "baseline_name": "today's list of the board, read model"}
    return [
        {"figure": f"board asOf halfway, {label}, {tasks} tasks / {events} events", "value": past, "unit": "ms",
         **baseline},
        {"figure": f"board asOf end, {label}, {tasks} tasks / {events} events", "value": now, "unit": "ms",
         **baseline},
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    common = {"redis_url": None, "elasticsearch_url": None, "kafka_bootstrap_servers": None,
              "argon2_time_cost": 1, "argon2_memory_kib": 64, "rate_limit_per_minute": 0,
              "rate_limit_anonymous_per_minute": 0}
    figures = []
    with tempfile.TemporaryDirectory() as data:
        figures += measure(Settings(data_dir=Path(data) / "embedded", database_url=None, **common),
                           "SQLite", args.tasks, args.events, args.runs)
        if args.database_url:
            figures += measure(Settings(data_dir=Path(data) / "pg", database_url=fresh_database(args.database_url),
                                        **common), "PostgreSQL", args.tasks, args.events, args.runs)
    report("time_travel", figures)


if __name__ == "__main__":
    main()
