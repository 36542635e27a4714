"""Commands/s and reads/s through TaskFlow's HTTP APIs on the embedded default, beside a bare
FastAPI endpoint (same server, same client, same run).

    .venv/bin/python -m bench.bench_embedded_http [--seconds 5] [--threads 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid

import httpx

from bench.common import free_port, load, report, server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    bare_port = free_port()
    with server([sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(bare_port),
                 "--log-level", "warning", "--no-access-log"], bare_port) as bare:
        bare_write = load(bare, lambda c, i: c.post("/items", json={"title": f"t{i}"}), threads=args.threads,
                          seconds=args.seconds)
        bare_read = load(bare, lambda c, i: c.get(f"/items/{i}"), threads=args.threads, seconds=args.seconds)

    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        # The rate limiter on, as deployed, with limits the bench's one user never reaches (the
        # default, 1,200 a minute per route, refused most of a run with 429s).
        env = {"TASKFLOW_DATA_DIR": data, "LOG_LEVEL": "WARNING",
               "RATE_LIMIT_PER_MINUTE": "1000000000", "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "1000000000"}
        with server([sys.executable, "-m", "infra.cli", "serve", "--port", str(port)], port, env) as base:
            email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
            httpx.post(f"{base}/api/v1/users", json={"email": email, "password": "benchmark-pw", "name": "Bench"})
            token = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": "benchmark-pw"}).json()
            auth = {"Authorization": f"Bearer {token['data']['accessToken']}"}
            project = httpx.post(f"{base}/api/v1/projects", json={"name": "Bench"}, headers=auth).json()["data"]
            created = httpx.post(f"{base}/api/v1/projects/{project['id']}/tasks", json={"title": "read me"},
                                 headers=auth).json()
            task_id, position = created["data"]["id"], created["meta"]["position"]
            httpx.get(f"{base}/api/v1/tasks/{task_id}", headers={**auth, "X-Consistency-Position": str(position)})

            writes = load(base, lambda c, i: c.post(f"/api/v1/projects/{project['id']}/tasks",
                                                    json={"title": f"task {i}"}, headers=auth),
                          threads=args.threads, seconds=args.seconds)
            reads = load(base, lambda c, i: c.get(f"/api/v1/tasks/{task_id}", headers=auth),
                         threads=args.threads, seconds=args.seconds)

    report("embedded_http", [
        {"figure": "create task commands/s (embedded)", "value": writes["per_second"], "unit": "req/s",
         "baseline": bare_write["per_second"], "baseline_name": "bare FastAPI POST"},
        {"figure": "create task p99 latency", "value": writes["p99_ms"], "unit": "ms",
         "baseline": bare_write["p99_ms"], "baseline_name": "bare FastAPI POST"},
        {"figure": "get task reads/s (embedded)", "value": reads["per_second"], "unit": "req/s",
         "baseline": bare_read["per_second"], "baseline_name": "bare FastAPI GET"},
        {"figure": "get task p99 latency", "value": reads["p99_ms"], "unit": "ms",
         "baseline": bare_read["p99_ms"], "baseline_name": "bare FastAPI GET"},
    ])
    if writes["errors"] or reads["errors"]:
        sys.exit(f"errors during the run: {writes['errors']} writes, {reads['errors']} reads")


if __name__ == "__main__":
    main()
