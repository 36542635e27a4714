"""Run by test_kafka in a child process, which SIGKILLs itself at a given position:

- ``relay``: after Kafka committed the batch holding that position, before the relay records it;
- ``consume NAME``: while the consumer of projection NAME applies that position, mid-batch;
- ``dead-letter NAME``: as soon as the consumer of projection NAME, whose handlers raise on that
  position, has committed it as a dead letter.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from infra.composition import build_system
from tests.conftest import embedded_settings
from tests.integration.crash_projector import CrashAt
from tests.integration.poison import RaisesOn, at_positions


def main(kind: str, settings_json: str, position: int, batch_size: int, projection: str = "") -> None:
    values = json.loads(settings_json)
    settings = embedded_settings(Path(values.pop("data_dir")), **values)
    if kind == "relay":
        system = build_system(settings, projection_names=[])
        relay = system.relay
        assert relay is not None
        relay.batch_size = batch_size
        record = relay.record

        def record_or_die(at: int) -> None:
            if at >= position:
                os.kill(os.getpid(), signal.SIGKILL)
            record(at)

        relay.record = record_or_die  # type: ignore[method-assign]
        relay.catch_up()
    elif kind == "dead-letter":
        system = build_system(settings, projection_names=[projection])
        consumer = system.projector.consumers[0]  # type: ignore[union-attr]
        consumer.batch_size = batch_size
        consumer.projection = RaisesOn(consumer.projection, at_positions(position))  # type: ignore[assignment]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            consumer.poll_once()
            if system.operations and system.operations.dead_letters(projection):
                os.kill(os.getpid(), signal.SIGKILL)
    else:
        system = build_system(settings, projection_names=[projection])
        consumer = system.projector.consumers[0]  # type: ignore[union-attr]
        consumer.batch_size = batch_size
        crash = CrashAt(consumer.projection, position, armed=False)
        consumer.projection = crash  # type: ignore[assignment]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            consumer.poll_once()
            crash.armed = crash.armed or consumer.status.applied_events > 0
    sys.exit("the crash position was never reached")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:])
