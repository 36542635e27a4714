"""CPU per create-task command in one write-API process, by thread: a profiling aid, not a
benchmark (no baseline; see docs/benchmarks.md, "Write API CPU per command").

    .venv/bin/python -m bench.profile_write_cpu --database-url postgresql://... --redis-url redis://...
        [--requests 2400] [--clients 16] [--profile-loop tottime] [--profile-writer tottime]

Builds the write API as a worker does (PostgreSQL + Redis, group commit) and calls it through ASGI
directly, without sockets or HTTP parsing, so the CPU it reports is the app's own and a loaded
machine disturbs it far less than a throughput figure. Per thread kind (the event loop, the
group-commit writer, the threadpool that runs sync dependencies and routes), from
/proc/self/task. The profiles use CPU time (time.thread_time), so waits for I/O and the GIL
do not show; profiling slows the run several-fold.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

from bench.bench_write_pg import fresh_database


def thread_cpu() -> dict[int, tuple[float, str]]:
    """CPU seconds so far of each thread of this process, with its kind (first word of its name)."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name.split(" ")[0].split("_")[0] for t in threading.enumerate()}
    out = {}
    for tid in os.listdir("/proc/self/task"):
        fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        out[int(tid)] = ((int(fields[11]) + int(fields[12])) / tick, names.get(int(tid), "other"))
    return out


async def call(app: Any, method: str, path: str, body: Any = None, headers: tuple = ()) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()), *headers],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
    }
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()  # never disconnects
        raise AssertionError

    response: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
        else:
            response["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return response["status"], json.loads(response["body"] or b"null")


async def run(args: argparse.Namespace) -> None:
    import commands.group_commit as group_commit
    from infra.asgi import write_api

    writer_profile = cProfile.Profile(time.thread_time) if args.profile_writer else None
    profiling = threading.Event()
    if writer_profile is not None:
        commit = group_commit.GroupCommitter._commit

        def profiled_commit(self: Any, jobs: list) -> None:
            if profiling.is_set():
                return writer_profile.runcall(commit, self, jobs)
            return commit(self, jobs)

        group_commit.GroupCommitter._commit = profiled_commit  # type: ignore[method-assign]

    app = write_api()
    email = f"cpu-{uuid.uuid4().hex[:8]}@example.com"
    await call(app, "POST", "/api/v1/users", {"email": email, "password": "benchmark-pw", "name": "CPU"})
    _, login = await call(app, "POST", "/api/v1/auth/login", {"email": email, "password": "benchmark-pw"})
    auth = (b"authorization", f"Bearer {login['data']['accessToken']}".encode())
    _, project = await call(app, "POST", "/api/v1/projects", {"name": "CPU"}, (auth,))
    path = f"/api/v1/projects/{project['data']['id']}/tasks"

    async def client(n: int) -> None:
        for i in range(n):
            status, body = await call(app, "POST", path, {"title": f"task {i}"}, (auth,))
            if status != 201:
                sys.exit(f"create-task answered {status}: {body}")

    per_client = args.requests // args.clients
    await asyncio.gather(*[client(max(1, per_client // 5)) for _ in range(args.clients)])  # warm up
    n = per_client * args.clients
    loop_profile = cProfile.Profile(time.thread_time) if args.profile_loop else None
    before, started = thread_cpu(), time.perf_counter()
    profiling.set()
    if loop_profile is not None:
        loop_profile.enable()
    await asyncio.gather(*[client(per_client) for _ in range(args.clients)])
    if loop_profile is not None:
        loop_profile.disable()
    profiling.clear()
    after, elapsed = thread_cpu(), time.perf_counter() - started
    by_kind: dict[str, float] = {}
    for tid, (seconds, kind) in after.items():
        by_kind[kind] = by_kind.get(kind, 0.0) + seconds - before.get(tid, (0.0, ""))[0]
    total = sum(by_kind.values())
    print(f"{n} create-task commands, {args.clients} concurrent, {n / elapsed:.0f} /s; "
          f"CPU {total * 1000 / n:.3f} ms per command: "
          + ", ".join(f"{kind} {seconds * 1000 / n:.3f}" for kind, seconds in sorted(by_kind.items()) if seconds))
    for name, profile in (("event loop", loop_profile), ("group-commit writer", writer_profile)):
        if profile is not None:
            print(f"--- {name} (CPU time)")
            pstats.Stats(profile).sort_stats(args.profile_loop if name == "event loop" else args.profile_writer).print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--requests", type=int, default=2400)
    parser.add_argument("--clients", type=int, default=16, help="concurrent requests (wrk's 32 over 2 workers)")
    parser.add_argument("--profile-loop", metavar="SORT", help="cProfile the event loop, sorted by SORT")
    parser.add_argument("--profile-writer", metavar="SORT", help="cProfile the group-commit writer")
    args = parser.parse_args()
    if not args.database_url or not args.redis_url:
        sys.exit("needs --database-url and --redis-url (eval $(scripts/services env))")
    os.environ.update({
        "DATABASE_URL": fresh_database(args.database_url), "REDIS_URL": args.redis_url,
        "REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}:", "TASKFLOW_DATA_DIR": tempfile.mkdtemp(),
        "LOG_LEVEL": "WARNING",
        # As bench_write_pg: the rate limiter on, with limits the one user never reaches.
        "RATE_LIMIT_PER_MINUTE": "1000000000", "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "1000000000",
    })
    for name in ("ELASTICSEARCH_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        os.environ.pop(name, None)
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
