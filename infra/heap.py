"""Keeps Python's cyclic garbage collector out of a long-running process's latency.

After start-up a process holds ~140,000 long-lived objects (modules, classes, the application's
wiring). A full (generation 2) collection walks all of them: about 80 ms on this machine, up to
125-260 ms when it is loaded, during which every thread of the process stands still (2-3 per process in a
benchmark run, start-up included, measured with ``gc.callbacks``). Frozen, those objects are
left out of every later collection, which then walks only what the process allocated since.

Used by every long-running process: the API workers, and `taskflow relay` / `taskflow project`
before their threads start. The freeze was once backed out of the processes running Kafka
consumers: in one series of benchmark runs on a heavily loaded machine, 7 of 20 starts had one
consumer never join its group (2 of 22 without the freeze); since the group-join watchdog of
``infra/kafka_consumer.py`` (``STUCK_JOIN_SECONDS``), none of 9 starts on the quiet machine stalled, and
the end-to-end lag p99 went from 233-487 ms to 126-175 ms (docs/benchmarks.md).
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once start-up is done (imports, composition, connections): collect what start-up left
    as garbage, then move every surviving object to the permanent generation."""
    gc.collect()
    gc.freeze()
