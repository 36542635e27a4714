"""Keeps Python's cyclic garbage collector out of a long-running process's latency.

After start-up a process holds ~140,000 long-lived objects (modules, classes, the application's
wiring). A full (generation 2) collection walks all of them: about 80 ms on this machine, up to
125-260 ms when it is loaded, during which every thread of the process stands still (2-3 per process in a
benchmark run, start-up included, measured with ``gc.callbacks``). Frozen, those objects are
left out of every later collection, which then walks only what the process allocated since.

Used by the API processes only. Processes running Kafka consumers (`taskflow project`, `relay`,
`serve`) are left as they were: while the benchmark's projector froze its heap (and started no
event-store listener), 7 of its 20 starts had one consumer never join its group, against 2 of 22
before; kafka-python's group join is where it stalls, why is not understood (docs/benchmarks.md).
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once start-up is done (imports, composition, connections): collect what start-up left
    as garbage, then move every surviving object to the permanent generation."""
    gc.collect()
    gc.freeze()
