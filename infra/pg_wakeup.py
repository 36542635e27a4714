"""Wakes the log followers of a process (the relay, the log-following projector) the moment any
process commits new events to the PostgreSQL event store.

eventsourcing 9.5's PostgreSQL recorder sends ``NOTIFY <its channel>`` inside every insert
transaction, so PostgreSQL delivers it on commit to every session LISTENing on that channel. In
the writer's own process ``app.on_saved`` already wakes the followers; in a separate ``relay`` or
``project`` process this listener does, instead of waiting out a poll period. The notification
carries nothing the followers need: they read the log from their tracked position as usual, so a
missed notification costs one poll period of latency, never an event. The followers keep polling
while the listener reconnects after an outage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql

log = logging.getLogger("taskflow.wakeup")


class EventStoreWakeup:
    def __init__(self, recorder: PostgresApplicationRecorder, listeners: Sequence[Callable[[], Any]]):
        self.recorder = recorder
        self.listeners = list(listeners)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in force (for tests and status)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="event-store-wakeup", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _wake(self) -> None:
        for listener in self.listeners:
            listener()

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                with self.recorder.datastore.get_connection() as conn:
                    conn.execute(sql.SQL("LISTEN {0}").format(sql.Identifier(self.recorder.channel_name)))
                    self.listening.set()
                    backoff = 0.0
                    # Anything committed while we were not listening is found by this first wake.
                    self._wake()
                    while not self._stop.is_set():
                        # A short timeout so stop() is honoured; one wake per batch of notifications.
                        if any(True for _ in conn.notifies(timeout=0.5, stop_after=1)):
                            self._wake()
                    conn.execute(sql.SQL("UNLISTEN {0}").format(sql.Identifier(self.recorder.channel_name)))
            except Exception as error:  # the database went away: followers poll until we are back
                log.warning("event store listener lost its connection; retrying", extra={"error": repr(error)})
                backoff = min(max(backoff * 2, 0.5), 5.0)
            finally:
                self.listening.clear()
            self._stop.wait(backoff)
