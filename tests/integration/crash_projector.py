"""Run by test_projections in a child process: projects the event store of a data directory and
SIGKILLs itself in the middle of a batch, when one projection handles a given position."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from infra.composition import build_system
from tests.conftest import embedded_settings


class CrashAt:
    """Wraps a projection: applies the event, then dies before the batch can commit."""

    def __init__(self, inner: Any, position: int, *, armed: bool = True):
        self.inner, self.position = inner, position
        self.name, self.version, self.tables, self.topics = inner.name, inner.version, inner.tables, inner.topics
        # Unarmed, it applies events without dying: the Kafka child arms it once a first batch has
        # committed, since partitions are read in no global order and the very first batch could
        # already hold an event past ``position``.
        self.armed = armed

    def process(self, event: Any, tx: Any, position: int) -> None:
        self.inner.process(event, tx, position)
        if self.armed and position >= self.position:
            os.kill(os.getpid(), signal.SIGKILL)


def main(data_dir: str, projection: str, position: int, batch_size: int, database_url: str) -> None:
    system = build_system(embedded_settings(Path(data_dir), database_url=database_url or None))
    for runner in system.projector.runners:
        runner.batch_size = batch_size
        if runner.name == projection:
            runner.projection = CrashAt(runner.projection, position)
    while system.projector.run_once():
        pass
    sys.exit("the crash position was never reached")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
