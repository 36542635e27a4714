"""A project's flow metrics (the analyst's view): cumulative flow, throughput, cycle time and
burndown, as JSON (``data`` + ``meta``) or CSV (``?format=csv``, one header row).

Who may read them: the project's members (others get 404, as for the project itself). Ranges are
UTC days, ``from`` and ``to`` inclusive, YYYY-MM-DD; without them, the 30 days ending today."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic.alias_generators import to_camel

from domain.errors import FieldProblem, InvalidInput
from projections.analytics import reports
from projections.analytics.projection import AnalyticsProjection
from projections.projects import ProjectsProjection
from read_api.access import readable_project
from read_api.consistency import consistent
from read_api.deps import CurrentUser, Services

router = APIRouter(prefix="/api/v1/projects/{project_id}/analytics", tags=["analytics"])
AnalyticsPosition = Annotated[int, Depends(consistent(AnalyticsProjection.name, ProjectsProjection.name))]

DEFAULT_DAYS = 30
# Daily series return one row per day; the others aggregate, so they may cover longer ranges.
MAX_DAYS_DAILY = 366
MAX_DAYS_AGGREGATE = 3 * 366
# Instants are compared as text, which orders only four-digit years; the open end of a period is
# 9999-12-31 (see the projection): days stay clear of both.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(9998, 12, 31)
_PARAMS = {"from", "to", "format", "minPosition", "maxWaitMs"}
FromParam = Query(None, alias="from", description="First UTC day, YYYY-MM-DD (default: 29 days before `to`).")
ToParam = Query(None, alias="to", description="Last UTC day, YYYY-MM-DD, inclusive (default: today, UTC).")
FormatParam = Query("json", description="`json` (default) or `csv` (text/csv with a header row).")


def _parameters(request: Request, first: str | None, last: str | None, kind: str,
                max_days: int) -> tuple[reports.Span, str]:
    """The range and format asked for; every problem with them is reported in one 400."""
    problems = [FieldProblem(name, "unknown query parameter")
                for name in request.query_params if name not in _PARAMS]
    if kind not in ("json", "csv"):
        problems.append(FieldProblem("format", "format must be json or csv"))
    days: dict[str, date | None] = {"from": None, "to": None}
    for name, raw in (("from", first), ("to", last)):
        if raw is None:
            continue
        try:
            days[name] = date.fromisoformat(raw) if len(raw) == 10 else None
        except ValueError:
            pass
        if days[name] is None or not EARLIEST_DAY <= days[name] <= LATEST_DAY:  # type: ignore[operator]
            problems.append(FieldProblem(name, f"{name} must be a date (YYYY-MM-DD) from {EARLIEST_DAY} to {LATEST_DAY}"))
            days[name] = None
    if problems:
        raise InvalidInput("invalid analytics parameters", problems)
    end = days["to"] or datetime.now(timezone.utc).date()
    start = days["from"] or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise InvalidInput.on("from", "from must not be after to")
    if (end - start).days + 1 > max_days:
        raise InvalidInput.on("from", f"the range may cover at most {max_days} days")
    return reports.Span(start, end), kind


def _csv(response: Response, name: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    headers = {**dict(response.headers), "Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _meta(project_id: UUID, span: reports.Span, **extra: Any) -> dict[str, Any]:
    return {"projectId": str(project_id), "from": span.first.isoformat(), "to": span.last.isoformat(), **extra}


@router.get("/cumulative-flow", summary="Tasks in each status at the end of each day (cumulative flow)")
def cumulative_flow(project_id: UUID, request: Request, response: Response, principal: CurrentUser,
                    services: Services, _: AnalyticsPosition, first: str | None = FromParam,
                    last: str | None = ToParam, format: str = FormatParam) -> Any:  # noqa: A002
    project = readable_project(services.store, str(project_id), principal)
    span, kind = _parameters(request, first, last, format, MAX_DAYS_DAILY)
    flow = reports.cumulative_flow(services.store, str(project_id), project["workflow"], span)
    names = [s["name"] for s in flow.statuses]
    if kind == "csv":
        return _csv(response, f"cumulative-flow-{span.first}-{span.last}", ["date", *names],
                    [[d.isoformat(), *(counts[n] for n in names)] for d, counts in flow.days])
    return {"data": [{"date": d.isoformat(), "counts": counts} for d, counts in flow.days],
            "meta": _meta(project_id, span, statuses=flow.statuses)}


BURNDOWN_FIELDS = ("scope", "remaining", "done", "scope_added", "scope_removed", "completed", "reopened",
                   "scope_points", "remaining_points", "points_added", "points_removed")


@router.get("/burndown", summary="Per day: scope, remaining and done tasks and points; scope changes")
def burndown(project_id: UUID, request: Request, response: Response, principal: CurrentUser,
             services: Services, _: AnalyticsPosition, first: str | None = FromParam,
             last: str | None = ToParam, format: str = FormatParam) -> Any:  # noqa: A002
    readable_project(services.store, str(project_id), principal)
    span, kind = _parameters(request, first, last, format, MAX_DAYS_DAILY)
    days = reports.burndown(services.store, str(project_id), span)
    columns = ["date", *(to_camel(f) for f in BURNDOWN_FIELDS)]
    rows = [[d.day.isoformat(), *(getattr(d, f) for f in BURNDOWN_FIELDS)] for d in days]
    if kind == "csv":
        return _csv(response, f"burndown-{span.first}-{span.last}", columns, rows)
    return {"data": [dict(zip(columns, row)) for row in rows], "meta": _meta(project_id, span)}


@router.get("/throughput", summary="Tasks completed per ISO week")
def throughput(project_id: UUID, request: Request, response: Response, principal: CurrentUser,
               services: Services, _: AnalyticsPosition, first: str | None = FromParam,
               last: str | None = ToParam, format: str = FormatParam) -> Any:  # noqa: A002
    readable_project(services.store, str(project_id), principal)
    span, kind = _parameters(request, first, last, format, MAX_DAYS_AGGREGATE)
    weeks = reports.throughput(services.store, str(project_id), span)
    columns = ["week", "weekStart", "completed"]
    rows = [[w.week, w.starts_on.isoformat(), w.completed] for w in weeks]
    if kind == "csv":
        return _csv(response, f"throughput-{span.first}-{span.last}", columns, rows)
    whole = reports.whole_weeks(span)
    return {"data": [dict(zip(columns, row)) for row in rows],
            "meta": _meta(project_id, span, weeksFrom=whole.first.isoformat(), weeksTo=whole.last.isoformat())}


CYCLE_COLUMNS = ("count", "withoutStart", "p50", "p85", "p95", "mean", "min", "max")


@router.get("/cycle-time", summary="Cycle time (hours) of the tasks completed in the range: percentiles, mean")
def cycle_time(project_id: UUID, request: Request, response: Response, principal: CurrentUser,
               services: Services, _: AnalyticsPosition, first: str | None = FromParam,
               last: str | None = ToParam, format: str = FormatParam) -> Any:  # noqa: A002
    readable_project(services.store, str(project_id), principal)
    span, kind = _parameters(request, first, last, format, MAX_DAYS_AGGREGATE)
    result = reports.cycle_time(services.store, str(project_id), span)
    data = {"count": result.count, "withoutStart": result.without_start, **result.hours}
    if kind == "csv":
        return _csv(response, f"cycle-time-{span.first}-{span.last}", CYCLE_COLUMNS,
                    [["" if data[c] is None else data[c] for c in CYCLE_COLUMNS]])
    return {"data": data, "meta": _meta(project_id, span, unit="hours", percentile="nearest-rank")}
