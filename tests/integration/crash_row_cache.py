"""Run by test_row_cache_workers in a child process: a second worker of the tasks projection
(same database, same Redis prefix) applies what the log holds, commits, and SIGKILLs itself
before its write-through reaches the row cache."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from infra.composition import build_system
from infra.redis_cache import RowCache
from tests.conftest import embedded_settings


def die(*_args: object, **_kwargs: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(data_dir: str, database_url: str, redis_url: str, redis_prefix: str) -> None:
    system = build_system(embedded_settings(Path(data_dir), database_url=database_url, redis_url=redis_url,
                                            redis_prefix=redis_prefix))
    RowCache.write_through = die  # type: ignore[method-assign]
    tasks = next(r for r in system.projector.runners if r.name == "tasks")
    tasks.step()
    sys.exit("the batch committed nothing to write through")


if __name__ == "__main__":
    main(*sys.argv[1:5])
