"""Run by test_rebuild in a child process: rebuilds a projection of the system its environment
describes, and SIGKILLs itself part-way: while catching up, or inside the swap (SQL: the swap's
transaction is open and its DDL done; Elasticsearch: the live index is write-blocked)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from infra.composition import build_system
from infra.settings import Settings


def die(*_: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(projection: str, point: str) -> None:
    system = build_system(Settings(), projection_names=[])
    assert system.rebuilds is not None
    system.rebuilds.batch_size = 5
    target = system.rebuilds.targets[projection]
    if point == "swapping":
        make_copy = target.store.copy_for_rebuild

        def copy_for_rebuild(p: Any, generation: int) -> Any:
            copy = make_copy(p, generation)
            swap = copy.swap
            copy.swap = lambda catch_up, before_commit: swap(catch_up, die)
            return copy

        target.store.copy_for_rebuild = copy_for_rebuild
        system.rebuilds.run(projection)
    else:
        def progress(state: str, position: int, head: int, rate: float) -> None:
            if state == "running" and position >= head // 2 > 0:
                die()

        system.rebuilds.run(projection, progress)
    sys.exit("the rebuild finished: the kill point was never reached")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
