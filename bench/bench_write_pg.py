"""Write throughput on PostgreSQL: commands/s and latency through TaskFlow's write API (with
group commit), beside a plain eventsourcing get-decide-save loop on the same server, same run.

    .venv/bin/python -m bench.bench_write_pg --database-url postgresql://... [--seconds 10]

Load comes from wrk (Debian package) on 127.0.0.1, which costs far less CPU than a Python client.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import httpx
import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.common import free_port, report, server, server_log_path

# Each wrk thread counts the status codes it saw (a `response` callback); `done` sums them over
# threads. Socket errors (connect/read/write/timeout) never reach `response` and are counted apart.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
counter = 0
statuses = {}
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
request = function()
  counter = counter + 1
  return wrk.format(nil, "/api/v1/projects/%(project)s/tasks", nil, '{"title": "bench task ' .. counter .. '"}')
end
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    table.insert(parts, string.format("\\"%%d\\": %%d", status, n))
  end
  local e = summary.errors
  io.write(string.format("JSON {\\"requests\\": %%d, \\"errors\\": %%d, \\"p50_ms\\": %%f, \\"p99_ms\\": %%f, "
    .. "\\"statuses\\": {%%s}, \\"socket_errors\\": {\\"connect\\": %%d, \\"read\\": %%d, \\"write\\": %%d, \\"timeout\\": %%d}}\\n",
    summary.requests, e.status + e.connect + e.read + e.write + e.timeout, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout))
end
"""


class Counter(Aggregate):
    @event("Created")
    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


def fresh_database(admin_url: str) -> str:
    name = f"taskflow_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def plain_loop(url: str, seconds: float, threads: int) -> float:
    """The baseline: eventsourcing's own get-decide-save, one transaction per command."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    app = Application(env={
        "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": parts.path.strip("/"),
        "POSTGRES_HOST": parts.hostname, "POSTGRES_PORT": str(parts.port), "POSTGRES_USER": parts.username,
        "POSTGRES_PASSWORD": parts.password, "POSTGRES_POOL_SIZE": str(threads),
    })
    ids = []
    for _ in range(threads * 4):
        counter = Counter()
        app.save(counter)
        ids.append(counter.id)
    done = [0] * threads
    stop_at = time.monotonic() + seconds

    def work(i: int) -> None:
        mine = ids[i::threads]
        n = 0
        while time.monotonic() < stop_at:
            counter = app.repository.get(mine[n % len(mine)])
            counter.increment()
            app.save(counter)
            n += 1
        done[i] = n

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    rate = sum(done) / (time.monotonic() - started)
    app.close()
    return rate


def wrk(base: str, token: str, project: str, seconds: float, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"token": token, "project": project})
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{int(seconds)}s", "--latency", "-s", script.name, base],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(script.name)
    figures = json.loads(out.split("JSON ", 1)[1].splitlines()[0])
    figures["per_second"] = figures["requests"] / seconds
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=8, help="threads of the plain loop")
    parser.add_argument("--workers", type=int, default=2, help="write API worker processes")
    args = parser.parse_args()
    if not args.database_url:
        sys.exit("needs --database-url (or DATABASE_URL): run scripts/services up; eval $(scripts/services env)")

    baseline = plain_loop(fresh_database(args.database_url), args.seconds, args.threads)

    port = free_port()
    env = {"DATABASE_URL": fresh_database(args.database_url), "TASKFLOW_DATA_DIR": tempfile.mkdtemp(),
           "LOG_LEVEL": "WARNING",
           # The rate limiter stays on, as deployed (one Redis round trip per request), with
           # limits the bench's one user never reaches.
           "RATE_LIMIT_PER_MINUTE": "1000000000", "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "1000000000"}
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
        env["REDIS_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}:"
    for name in ("ELASTICSEARCH_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        os.environ.pop(name, None)
    command = [sys.executable, "-m", "infra.cli", "write-api", "--port", str(port), "--workers", str(args.workers)]
    with server(command, port, env, log=server_log_path("write_pg")) as base:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        httpx.post(f"{base}/api/v1/users", json={"email": email, "password": "benchmark-pw", "name": "Bench"})
        token = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": "benchmark-pw"}).json()
        token = token["data"]["accessToken"]
        created = httpx.post(f"{base}/api/v1/projects", json={"name": "Bench"},
                             headers={"Authorization": f"Bearer {token}"})
        if created.status_code != 201:
            sys.exit(f"could not create the project: {created.status_code} {created.text}")
        project = created.json()["data"]["id"]
        wrk(base, token, project, 2, args.connections)  # warm up
        result = wrk(base, token, project, args.seconds, args.connections)
    # Which errors, if any: statuses other than 201 and socket errors, so a fast stream of 503s
    # (or 401s) is never mistaken for throughput.
    print("statuses:", json.dumps(result["statuses"], sort_keys=True), "| socket errors:", json.dumps(result["socket_errors"]))

    report("write_pg", [
        {"figure": f"create-task commands/s, write API on PostgreSQL ({args.workers} workers)", "value": result["per_second"],
         "unit": "cmd/s", "baseline": baseline, "baseline_name": f"plain eventsourcing loop, {args.threads} threads"},
        {"figure": "create-task p50 latency", "value": result["p50_ms"], "unit": "ms"},
        {"figure": "create-task p99 latency", "value": result["p99_ms"], "unit": "ms"},
        {"figure": "errors (non-2xx, socket)", "value": float(result["errors"]), "unit": "count"},
    ])


if __name__ == "__main__":
    main()
