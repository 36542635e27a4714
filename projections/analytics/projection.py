"""Analytics read model: what each task did and when, by the event's own timestamp.

Handles: Task.Created, Task.Moved, Task.Updated (estimate changes only), Task.Deleted.
Writes: tables ``analytics_tasks`` (one row of facts per task) and ``analytics_periods`` (one row
per stretch of time a task spent in one state: status and estimate).

Every row belongs to one task and is written only by that task's events, which carry all they
need (a move records the category of the status it enters). So the projection never depends on
the order of events of different aggregates: it builds the same rows from the log or from Kafka
partitions, on SQLite or PostgreSQL. Times come from ``event.timestamp``, never the wall clock,
so a rebuild recomputes the same figures.

A workflow change does not rewrite history: a period keeps the status name and category the task
had then (a task left in a removed or renamed status stays in it until it is moved).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.clock import iso_utc
from domain.task import Task
from projections.base import Projection, handles
from projections.schema import Column, Table, instant, text, uuid
from projections.store import ProjectionTransaction

# The end of a period that has not ended yet: later than any real instant, also as text.
OPEN_END = "9999-12-31T23:59:59.999999Z"
# The pseudo-category of the zero-length period that records a task's deletion.
DELETED = "deleted"

ANALYTICS_TASKS = Table(
    "analytics_tasks",
    (
        uuid("task_id"),
        uuid("project_id"),
        instant("created_at"),
        text("status"),
        text("category"),
        Column("estimate", "float"),
        Column("deleted", "bool"),
        instant("cycle_started_at"),
        instant("completed_at"),
        Column("cycle_seconds", "float"),
        # The version of the task's last event applied here: an event at or below it was
        # already applied (a replay), and it is also the ``seq`` of the task's current period.
        Column("version", "int"),
    ),
    primary_key=("task_id",),
    indexes=(("project_id", "completed_at"),),
)

ANALYTICS_PERIODS = Table(
    "analytics_periods",
    (
        uuid("task_id"),
        Column("seq", "int"),  # the version of the event that began the period
        uuid("project_id"),
        text("status"),
        text("category"),
        instant("started_at"),
        instant("ended_at"),  # OPEN_END while the period lasts
        # The task's state during the period, by the definitions below.
        Column("in_scope", "bool"),
        Column("open", "bool"),
        Column("points", "float"),
        # What the change that began the period did to the burndown, by the definitions below.
        Column("scope_delta", "int"),
        Column("points_delta", "float"),
        Column("completes", "bool"),
        Column("reopens", "bool"),
    ),
    primary_key=("task_id", "seq"),
    indexes=(("project_id", "ended_at"), ("project_id", "started_at")),
)


class AnalyticsProjection(Projection):
    name = "analytics"
    # Bump whenever a definition below changes meaning: the runner then drops the analytics
    # tables and rebuilds them from position 0, so the new definition holds for all of history.
    version = 1
    tables = (ANALYTICS_TASKS, ANALYTICS_PERIODS)
    row_cache = False  # read by range queries only

    # --- metric definitions (applied when events are projected) -----------------------------

    def starts_cycle(self, category: str) -> bool:
        """Cycle time runs from the FIRST time a task enters a status of this category (a task
        moved back to todo and on again keeps its first start)."""
        return category == "in_progress"

    def in_scope(self, category: str) -> bool:
        """Burndown scope: live tasks that are to do, in progress or done. Cancelled and deleted
        tasks leave the scope (and come back if un-cancelled)."""
        return category in ("todo", "in_progress", "done")

    def is_open(self, category: str) -> bool:
        """Remaining work in a burndown: tasks in scope and not done."""
        return category in ("todo", "in_progress")

    def points(self, category: str, estimate: float | None) -> float:
        """Story points a task contributes to the burndown: its estimate while in scope."""
        return (estimate or 0.0) if self.in_scope(category) else 0.0

    def completes(self, before: str | None, after: str) -> bool:
        """A completion: entering a done status from anything else (creation included)."""
        return after == "done" and before != "done"

    def reopens(self, before: str | None, after: str) -> bool:
        """A re-opening: leaving done for a to-do or in-progress status."""
        return before == "done" and self.is_open(after)

    def completed_at(self, previous: str | None, category: str, moment: str) -> str | None:
        # previous: the completion the task had if it was done until this change; moment: now.
        """The completion that counts for throughput and cycle time is the LATEST one, and only
        while the task is still done: re-opening a task takes back its completion (so a past
        week's throughput can drop), and completing it again counts in the new week, once."""
        if category != "done":
            return None
        return previous if previous is not None else moment

    # --- handlers -----------------------------------------------------------------------------

    @handles(Task.Created)
    def created(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        if self._facts(tx, e) is not None:  # a task is created once: this is a replay
            return
        at = iso_utc(e.timestamp)
        category = e.status_category
        facts = {
            "task_id": str(e.originator_id),
            "project_id": str(e.project_id),
            "created_at": at,
            "status": e.status,
            "category": category,
            "estimate": e.estimate,
            "deleted": False,
            "cycle_started_at": at if self.starts_cycle(category) else None,
            "completed_at": self.completed_at(None, category, at),
            "version": e.originator_version,
        }
        facts["cycle_seconds"] = _cycle_seconds(facts)
        tx.upsert(ANALYTICS_TASKS, facts)
        self._begin_period(tx, None, facts, at, e.originator_version)

    @handles(Task.Moved)
    def moved(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        facts = self._live_facts(tx, e)
        if facts is None:
            return
        at = iso_utc(e.timestamp)
        changed = {
            "status": e.to_status,
            "category": e.category,
            "cycle_started_at": facts["cycle_started_at"]
            or (at if self.starts_cycle(e.category) else None),
            # Moving between two done statuses keeps the completion it had.
            "completed_at": self.completed_at(
                facts["completed_at"] if facts["category"] == "done" else None, e.category, at
            ),
        }
        self._change(tx, e, facts, changed, at)

    @handles(Task.Updated)
    def updated(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        if "estimate" not in e.changes:
            return
        facts = self._live_facts(tx, e)
        if facts is None:
            return
        self._change(tx, e, facts, {"estimate": e.changes["estimate"]}, iso_utc(e.timestamp))

    @handles(Task.Deleted)
    def deleted(self, e: Any, tx: ProjectionTransaction, position: int) -> None:
        facts = self._live_facts(tx, e)
        if facts is None:
            return
        self._change(tx, e, facts, {"deleted": True, "category": DELETED}, iso_utc(e.timestamp))

    # --- rows -----------------------------------------------------------------------------------

    @staticmethod
    def _facts(tx: ProjectionTransaction, e: Any) -> dict[str, Any] | None:
        return tx.get(ANALYTICS_TASKS, {"task_id": str(e.originator_id)})

    def _live_facts(self, tx: ProjectionTransaction, e: Any) -> dict[str, Any] | None:
        """The facts of the (not deleted) task the event changes; None if there is nothing to
        change, or the event was already applied (its version is not above the task's)."""
        facts = self._facts(tx, e)
        if facts is None or facts["deleted"] or facts["version"] >= e.originator_version:
            return None
        return facts

    def _change(self, tx: ProjectionTransaction, e: Any, facts: dict[str, Any], changed: dict[str, Any],
                at: str) -> None:
        task_id = str(e.originator_id)
        tx.update(ANALYTICS_PERIODS, {"task_id": task_id, "seq": facts["version"]}, {"ended_at": at})
        after = {**facts, **changed, "version": e.originator_version}
        after["cycle_seconds"] = _cycle_seconds(after)
        tx.update(ANALYTICS_TASKS, {"task_id": task_id},
                  {k: after[k] for k in (*changed, "cycle_seconds", "version")})
        self._begin_period(tx, facts, after, at, e.originator_version)

    def _begin_period(self, tx: ProjectionTransaction, before: dict[str, Any] | None, after: dict[str, Any],
                      at: str, seq: int) -> None:
        category = after["category"]
        old_category = before["category"] if before else None
        points = self.points(category, after["estimate"])
        old_points = self.points(old_category, before["estimate"]) if before else 0.0
        was_in_scope = before is not None and self.in_scope(old_category)
        tx.upsert(
            ANALYTICS_PERIODS,
            {
                "task_id": after["task_id"],
                "seq": seq,
                "project_id": after["project_id"],
                "status": None if category == DELETED else after["status"],
                "category": category,
                "started_at": at,
                # A deletion is an instant, not a stretch of time: it only marks the day.
                "ended_at": at if category == DELETED else OPEN_END,
                "in_scope": self.in_scope(category),
                "open": self.is_open(category),
                "points": points,
                "scope_delta": int(self.in_scope(category)) - int(was_in_scope),
                "points_delta": points - old_points,
                "completes": self.completes(old_category, category),
                "reopens": self.reopens(old_category, category),
            },
        )


def _cycle_seconds(facts: dict[str, Any]) -> float | None:
    """Cycle time: from the cycle's start to the completion that counts (None if either is missing)."""
    start, end = facts["cycle_started_at"], facts["completed_at"]
    if start is None or end is None:
        return None
    return (_instant(end) - _instant(start)).total_seconds()


def _instant(text_value: str) -> datetime:
    return datetime.fromisoformat(text_value.replace("Z", "+00:00"))
