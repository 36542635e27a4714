"""Reading the analytics read model: the series and statistics the read API serves.

Days are UTC calendar days; "at the end of a day" means the state just before the next midnight
(UTC). Everything here is a read-time computation over rows the projection wrote: the metric
definitions that need a rebuild when they change live in ``projection.py``; the two read-time
choices (which weeks a range covers, how a percentile is taken) are documented where they are
made, below, and need no rebuild.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from domain.clock import iso_utc
from domain.errors import InvalidInput
from projections.analytics.projection import ANALYTICS_PERIODS, ANALYTICS_TASKS, DELETED
from projections.store import Filter, ListQuery, ReadModelReader, Row

# A report reads at most this many rows (one query, so one consistent snapshot); beyond it the
# client is asked for a narrower range rather than the server holding an unbounded result.
MAX_ROWS = 200_000
PERCENTILES = (50, 85, 95)


@dataclass(frozen=True)
class Span:
    """An inclusive range of UTC days."""

    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def starts_at(self) -> str:
        return _midnight(self.first)

    @property
    def ends_before(self) -> str:
        return _midnight(self.last + timedelta(days=1))


def _midnight(day: date) -> str:
    return iso_utc(datetime.combine(day, time(), tzinfo=timezone.utc))  # type: ignore[return-value]


def _rows(reader: ReadModelReader, table: Any, filters: list[Filter]) -> list[Row]:
    # Cursor mode: no COUNT query; ``last_sort_values`` is set only when more rows follow.
    result = reader.query(table, ListQuery(filters=filters, per_page=MAX_ROWS, cursor_mode=True))
    if result.last_sort_values is not None:
        raise InvalidInput.on("from", "this range holds too much history to compute at once; narrow from/to")
    return result.rows


def _periods(reader: ReadModelReader, project_id: str, span: Span) -> list[Row]:
    """Every period that overlaps the span (a deletion in the span included)."""
    return _rows(reader, ANALYTICS_PERIODS, [
        Filter("project_id", "eq", project_id),
        Filter("started_at", "lt", span.ends_before),
        Filter("ended_at", "gte", span.starts_at),
    ])


def _completed(reader: ReadModelReader, project_id: str, starts_at: str, ends_before: str) -> list[Row]:
    """Live (not deleted) tasks whose counted completion lies in [starts_at, ends_before)."""
    return _rows(reader, ANALYTICS_TASKS, [
        Filter("project_id", "eq", project_id),
        Filter("deleted", "eq", False),
        Filter("completed_at", "gte", starts_at),
        Filter("completed_at", "lt", ends_before),
    ])


class _DailyTally:
    """Sums of values over the day-ends a period covers, without walking every day of it: +v on
    the first day-end a period covers, -v after the last (a difference array), then a running sum."""

    def __init__(self, span: Span):
        self.days = span.days
        self.ends = [_midnight(d + timedelta(days=1)) for d in self.days]
        self.diff: dict[str, list[float]] = defaultdict(lambda: [0.0] * (len(self.days) + 1))

    def add(self, key: str, period: Row, value: float = 1.0) -> None:
        # A period [started_at, ended_at) holds at a day's end E when started_at < E <= ended_at.
        first = bisect_right(self.ends, period["started_at"])
        last = bisect_right(self.ends, period["ended_at"]) - 1
        if first <= last:
            self.diff[key][first] += value
            self.diff[key][last + 1] -= value

    def series(self, key: str) -> list[float]:
        running, out = 0.0, []
        for step in self.diff.get(key, [0.0] * len(self.days))[: len(self.days)]:
            running += step
            out.append(running)
        return out


# --- cumulative flow ---------------------------------------------------------------------------------

@dataclass
class CumulativeFlow:
    statuses: list[dict[str, Any]]  # {name, category, inWorkflow}, in workflow order
    days: list[tuple[date, dict[str, int]]]


def cumulative_flow(reader: ReadModelReader, project_id: str, workflow: list[dict[str, str]],
                    span: Span) -> CumulativeFlow:
    """Tasks in each status at the end of each day. Statuses: the project's workflow in order,
    then statuses no longer in it that some task was still in during the span."""
    tally = _DailyTally(span)
    last_category: dict[str, tuple[str, str]] = {}
    for period in _periods(reader, project_id, span):
        if period["category"] == DELETED:
            continue
        tally.add(period["status"], period)
        seen = last_category.get(period["status"])
        if seen is None or period["started_at"] > seen[0]:
            last_category[period["status"]] = (period["started_at"], period["category"])
    statuses = [{"name": s["name"], "category": s["category"], "inWorkflow": True} for s in workflow]
    in_workflow = {s["name"] for s in workflow}
    for name in sorted(set(last_category) - in_workflow):
        if any(tally.series(name)):
            statuses.append({"name": name, "category": last_category[name][1], "inWorkflow": False})
    columns = {s["name"]: tally.series(s["name"]) for s in statuses}
    days = [(d, {name: int(values[i]) for name, values in columns.items()}) for i, d in enumerate(tally.days)]
    return CumulativeFlow(statuses, days)


# --- burndown ---------------------------------------------------------------------------------------

@dataclass
class BurndownDay:
    day: date
    scope: int = 0  # tasks in scope at the end of the day
    remaining: int = 0  # of which open
    done: int = 0  # of which done
    scope_added: int = 0  # tasks that entered the scope during the day
    scope_removed: int = 0  # tasks that left it (cancelled, deleted)
    completed: int = 0  # completions during the day
    reopened: int = 0  # re-openings during the day
    scope_points: float = 0.0
    remaining_points: float = 0.0
    points_added: float = 0.0  # scope points added during the day (new tasks, raised estimates)
    points_removed: float = 0.0


def burndown(reader: ReadModelReader, project_id: str, span: Span) -> list[BurndownDay]:
    tally = _DailyTally(span)
    days = [BurndownDay(d) for d in tally.days]
    index = {d.isoformat(): i for i, d in enumerate(tally.days)}
    for period in _periods(reader, project_id, span):
        if period["in_scope"]:
            tally.add("scope", period)
            tally.add("scope_points", period, period["points"])
        if period["open"]:
            tally.add("remaining", period)
            tally.add("remaining_points", period, period["points"])
        i = index.get(period["started_at"][:10])
        if i is None:
            continue
        day = days[i]
        day.scope_added += max(period["scope_delta"], 0)
        day.scope_removed += max(-period["scope_delta"], 0)
        day.completed += int(period["completes"])
        day.reopened += int(period["reopens"])
        day.points_added += max(period["points_delta"], 0.0)
        day.points_removed += max(-period["points_delta"], 0.0)
    for name in ("scope", "remaining", "scope_points", "remaining_points"):
        for day, value in zip(days, tally.series(name)):
            setattr(day, name, int(value) if name in ("scope", "remaining") else value)
    for day in days:
        day.done = day.scope - day.remaining
        # Points are sums of floats: rounded so 0.1 + 0.2 reads 0.3.
        for name in ("scope_points", "remaining_points", "points_added", "points_removed"):
            setattr(day, name, round(getattr(day, name), 3))
    return days


# --- throughput ---------------------------------------------------------------------------------------

@dataclass
class WeekCount:
    week: str  # ISO week, e.g. 2026-W10
    starts_on: date  # its Monday
    completed: int


def whole_weeks(span: Span) -> Span:
    """Throughput counts whole ISO weeks (Monday to Sunday): a range is widened to the Monday of
    its first day's week and the Sunday of its last day's week."""
    return Span(span.first - timedelta(days=span.first.weekday()),
                span.last + timedelta(days=6 - span.last.weekday()))


def throughput(reader: ReadModelReader, project_id: str, span: Span) -> list[WeekCount]:
    """Tasks completed per ISO week, by the completion that counts (see the projection)."""
    weeks = whole_weeks(span)
    counts: dict[date, int] = defaultdict(int)
    for task in _completed(reader, project_id, weeks.starts_at, weeks.ends_before):
        day = date.fromisoformat(task["completed_at"][:10])
        counts[day - timedelta(days=day.weekday())] += 1
    out = []
    monday = weeks.first
    while monday <= weeks.last:
        year, week, _ = monday.isocalendar()
        out.append(WeekCount(f"{year}-W{week:02d}", monday, counts[monday]))
        monday += timedelta(days=7)
    return out


# --- cycle time ------------------------------------------------------------------------------------------

@dataclass
class CycleTime:
    count: int  # completed tasks with a cycle time
    without_start: int  # completed tasks that never entered an in-progress status (no cycle time)
    hours: dict[str, float | None] = field(default_factory=dict)  # p50, p85, p95, mean, min, max


def nearest_rank(sorted_values: list[float], percent: int) -> float:
    """The nearest-rank percentile: the smallest value with at least ``percent``% of the values
    at or below it (always one of the values, never interpolated)."""
    rank = math.ceil(percent / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def cycle_time(reader: ReadModelReader, project_id: str, span: Span) -> CycleTime:
    """Cycle times, in hours, of the tasks whose counted completion lies in the span."""
    tasks = _completed(reader, project_id, span.starts_at, span.ends_before)
    hours = sorted(t["cycle_seconds"] / 3600 for t in tasks if t["cycle_seconds"] is not None)
    result = CycleTime(count=len(hours), without_start=len(tasks) - len(hours))
    for p in PERCENTILES:
        result.hours[f"p{p}"] = round(nearest_rank(hours, p), 3) if hours else None
    result.hours["mean"] = round(sum(hours) / len(hours), 3) if hours else None
    result.hours["min"] = round(hours[0], 3) if hours else None
    result.hours["max"] = round(hours[-1], 3) if hours else None
    return result
