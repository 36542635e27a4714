"""Dead letters in SQL (table ``projection_dead_letters``, beside ``projection_tracking`` in the
read-model database): the events a projection could not apply, and the events parked behind them.

A ``DeadLetterLog`` works inside its caller's transaction: the read-model stores write dead letters
in the same commit as the projection's rows and position, so a crash never loses one nor records
one twice (see ``projections/operations.py`` for what the statuses mean).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from domain.clock import iso_utc
from projections.operations import UNRESOLVED, DeadLetter

Execute = Callable[[str, Sequence[Any]], list[Mapping[str, Any]]]

DEAD_LETTERS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_dead_letters ("
    "projection TEXT NOT NULL, position BIGINT NOT NULL, aggregate_id TEXT NOT NULL, event_type TEXT NOT NULL, "
    "status TEXT NOT NULL, error TEXT, attempts INTEGER NOT NULL, first_failed_at TEXT NOT NULL, "
    "last_failed_at TEXT NOT NULL, blocked_by BIGINT, resolved_at TEXT, PRIMARY KEY (projection, position))"
)
_COLUMNS = ("projection, position, aggregate_id, event_type, status, error, attempts, first_failed_at, "
            "last_failed_at, blocked_by, resolved_at")
# An error message is for an operator to read, not a log: keep the row small.
MAX_ERROR_LENGTH = 2000


def now() -> str:
    return iso_utc(datetime.now(timezone.utc)) or ""


def _letter(row: Mapping[str, Any]) -> DeadLetter:
    return DeadLetter(
        projection=row["projection"], position=int(row["position"]), aggregate_id=row["aggregate_id"],
        event_type=row["event_type"], status=row["status"], error=row["error"], attempts=int(row["attempts"]),
        first_failed_at=row["first_failed_at"], last_failed_at=row["last_failed_at"],
        blocked_by=int(row["blocked_by"]) if row["blocked_by"] is not None else None,
        resolved_at=row["resolved_at"],
    )


def read_dead_letters(execute: Execute, placeholder: str, projection: str | None) -> list[DeadLetter]:
    """Every dead letter (of one projection, or of all), in position order."""
    where, params = (f" WHERE projection = {placeholder}", [projection]) if projection is not None else ("", [])
    rows = execute(f"SELECT {_COLUMNS} FROM projection_dead_letters{where} ORDER BY projection, position", params)
    return [_letter(r) for r in rows]


def blocked_query(placeholder: str, projection: str) -> tuple[str, list[Any]]:
    """The read behind ``DeadLetterLog.blocked`` (a store may send it ahead with its batch's first)."""
    p = placeholder
    return (f"SELECT aggregate_id, position, blocked_by FROM projection_dead_letters "
            f"WHERE projection = {p} AND status IN ({p}, {p})", [projection, *UNRESOLVED])


class DeadLetterLog:
    """One projection's dead letters, read and written inside the caller's transaction."""

    def __init__(self, execute: Execute, placeholder: str, projection: str):
        self._execute = execute
        self._p = placeholder
        self.projection = projection

    def blocked(self) -> dict[str, int]:
        """aggregate id -> the open dead letter its later events must wait behind."""
        rows = self._execute(*blocked_query(self._p, self.projection))
        return {r["aggregate_id"]: int(r["blocked_by"] if r["blocked_by"] is not None else r["position"])
                for r in rows}

    def record_failure(self, position: int, aggregate_id: str, event_type: str, error: str) -> None:
        """The event's handler raised: an open dead letter (again, if it was one: attempts + 1)."""
        p, at = self._p, now()
        self._execute(
            f"INSERT INTO projection_dead_letters ({_COLUMNS}) VALUES ({p}, {p}, {p}, {p}, 'open', {p}, 1, {p}, {p}, "
            f"NULL, NULL) ON CONFLICT (projection, position) DO UPDATE SET status = 'open', error = excluded.error, "
            f"attempts = projection_dead_letters.attempts + 1, last_failed_at = excluded.last_failed_at, "
            f"blocked_by = NULL, resolved_at = NULL",
            [self.projection, position, aggregate_id, event_type, error[:MAX_ERROR_LENGTH], at, at],
        )

    def park(self, position: int, aggregate_id: str, event_type: str, behind: int) -> None:
        """The event waits behind the open dead letter ``behind`` of its aggregate."""
        p, at = self._p, now()
        self._execute(
            f"INSERT INTO projection_dead_letters ({_COLUMNS}) VALUES ({p}, {p}, {p}, {p}, 'parked', NULL, 0, {p}, "
            f"{p}, {p}, NULL) ON CONFLICT (projection, position) DO UPDATE SET status = 'parked', "
            f"blocked_by = excluded.blocked_by, last_failed_at = excluded.last_failed_at, resolved_at = NULL",
            [self.projection, position, aggregate_id, event_type, at, at, behind],
        )

    def get(self, position: int) -> DeadLetter | None:
        p = self._p
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM projection_dead_letters WHERE projection = {p} AND position = {p}",
            [self.projection, position],
        )
        return _letter(rows[0]) if rows else None

    def parked_behind(self, position: int) -> list[DeadLetter]:
        p = self._p
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM projection_dead_letters WHERE projection = {p} AND blocked_by = {p} "
            f"AND status = 'parked' ORDER BY position",
            [self.projection, position],
        )
        return [_letter(r) for r in rows]

    def resolve(self, position: int, status: str) -> None:
        """An operator applied the event (``retried``) or gave it up (``skipped``)."""
        p = self._p
        self._execute(
            f"UPDATE projection_dead_letters SET status = {p}, blocked_by = NULL, resolved_at = {p} "
            f"WHERE projection = {p} AND position = {p}",
            [status, now(), self.projection, position],
        )

    def move_parked(self, behind: int, after: int, to: int) -> None:
        """The events parked behind ``behind`` that come after ``after`` now wait behind ``to``."""
        p = self._p
        self._execute(
            f"UPDATE projection_dead_letters SET blocked_by = {p} "
            f"WHERE projection = {p} AND blocked_by = {p} AND position > {p} AND status = 'parked'",
            [to, self.projection, behind, after],
        )
