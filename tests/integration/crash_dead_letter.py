"""Run by test_dead_letters in a child process: projects ``tasks`` with a handler that raises on
one event, and SIGKILLs itself in the middle of a batch at a given position."""

from __future__ import annotations

import sys
from pathlib import Path

from infra.composition import build_system
from tests.conftest import embedded_settings
from tests.integration.crash_projector import CrashAt
from tests.integration.poison import RaisesOn, at_positions


def main(data_dir: str, database_url: str, poison: int, crash_at: int, batch_size: int) -> None:
    system = build_system(embedded_settings(Path(data_dir), database_url=database_url or None),
                          projection_names=["tasks"])
    runner = system.projector.runners[0]
    runner.batch_size = batch_size
    runner.projection = CrashAt(RaisesOn(runner.projection, at_positions(poison)), crash_at)
    while system.projector.run_once():
        pass
    sys.exit("the crash position was never reached")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
