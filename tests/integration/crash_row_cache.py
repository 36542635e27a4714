"""Run by the row cache tests in a child process: a worker of the tasks projection (same database,
same Redis prefix as the test's) applies what there is, commits, and SIGKILLs itself before its
write-through reaches the row cache.

- ``log``: a worker following the event store's log;
- ``kafka``: a consumer of the projection's group, which takes the partitions it is given.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from infra.composition import build_system
from infra.redis_cache import RowCache
from tests.conftest import embedded_settings


def die(*_args: object, **_kwargs: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(kind: str, settings_json: str) -> None:
    values = json.loads(settings_json)
    system = build_system(embedded_settings(Path(values.pop("data_dir")), **values), projection_names=["tasks"])
    RowCache.write_through = die  # type: ignore[method-assign]
    if kind == "log":
        system.projector.runners[0].step()
    else:
        consumer = system.projector.consumers[0]  # type: ignore[union-attr]
        deadline = time.monotonic() + 90  # a loaded broker may take its time to rebalance
        while time.monotonic() < deadline:
            consumer.poll_once()
    sys.exit("the worker committed nothing to write through")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
