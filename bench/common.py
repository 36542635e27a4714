"""Helpers for benchmarks: start servers on loopback, drive bounded load, report figures.

Every figure is printed beside a baseline measured in the same run, and also written as JSON under
bench/results/ (figure, value, unit, baseline, ratio): machines are noisy, ratios hold."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_log_path(name: str) -> Path | None:
    """Where a benchmark keeps a server's output: bench/results/<name>.log, or nowhere when
    BENCH_SERVER_LOG=0 (the log costs a little CPU; errors are unexplainable without it)."""
    if os.environ.get("BENCH_SERVER_LOG", "1") == "0":
        return None
    RESULTS.mkdir(exist_ok=True)
    return RESULTS / f"{name}.log"


@contextmanager
def server(args: list[str], port: int, env: dict[str, str] | None = None, log: Path | None = None) -> Iterator[str]:
    """Run a server process on 127.0.0.1:port until the block ends; its stdout and stderr go to
    ``log`` when given (else nowhere)."""
    output = open(log, "wb") if log else subprocess.DEVNULL
    if log:
        print(f"server log: {log}", flush=True)
    process = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"server {args} did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)
        if log:
            output.close()


def load(base: str, make_request: Callable[[httpx.Client, int], httpx.Response], *, threads: int = 8,
         seconds: float = 5.0, max_requests: int = 200_000) -> dict[str, float]:
    """Bounded closed-loop load: ``threads`` clients for ``seconds`` (or ``max_requests``)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    counter = iter(range(max_requests))

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            local: list[float] = []
            for i in counter:
                if time.monotonic() >= stop_at:
                    break
                started = time.perf_counter()
                response = make_request(client, i)
                local.append(time.perf_counter() - started)
                if response.status_code >= 400:
                    errors[0] += 1
            with lock:
                latencies.extend(local)

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "per_second": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0,
    }


def report(name: str, figures: list[dict[str, Any]]) -> None:
    """Print figures beside their baselines and write them to bench/results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    print(f"\n== {name} ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
    for f in figures:
        f.setdefault("baseline", None)
        ratio = f["value"] / f["baseline"] if f["baseline"] else None
        f["ratio"] = round(ratio, 3) if ratio is not None else None
        base = f" | baseline {f['baseline']:.1f} {f['unit']} ({f['baseline_name']}) | ratio {ratio:.3f}" if ratio else ""
        print(f"{f['figure']:<44} {f['value']:>10.1f} {f['unit']}{base}")
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2))
