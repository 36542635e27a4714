"""The audit log: every stored event of every aggregate, in position order, for auditors.

Which positions match a filter comes from the ``audit`` index projection; the events themselves
(and their hash-chain links) are read from the event store by position. ``X-Projection-Position``
is what the index has applied: events after it are not listed yet (``minPosition`` waits for them).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from domain.clock import iso_utc, parse_iso_utc
from domain.errors import FieldProblem, Forbidden, InvalidInput
from domain.identity import Principal
from projections.audit import AUDIT_INDEX
from projections.store import Filter, ListQuery, Sort
from read_api.consistency import consistent
from read_api.deps import AuditTrail, CurrentUser, ReadServices, Services
from read_api.query import ListRequest
from read_api.routes.history import describe

log = logging.getLogger("taskflow.audit")
router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
_TIME_PARAMS = ("from", "to")


def require_auditor(principal: CurrentUser) -> Principal:
    if not principal.is_auditor:
        raise Forbidden("the audit log is for users with the auditor role")
    return principal


Auditor = Annotated[Principal, Depends(require_auditor)]
# Declared after Auditor in each route, so a non-auditor is refused before any wait.
IndexPosition = Annotated[int, Depends(consistent("audit"))]


def _time_filters(request: Request) -> list[Filter]:
    """``from`` (inclusive) and ``to`` (exclusive) on the time the events occurred."""
    bounds: dict[str, str] = {}
    problems = []
    for name in _TIME_PARAMS:
        raw = request.query_params.get(name)
        if raw is None:
            continue
        try:
            bounds[name] = iso_utc(parse_iso_utc(raw))
        except ValueError:
            problems.append(FieldProblem(name, "must be an ISO-8601 time, e.g. 2026-01-31T12:00:00Z"))
    if problems:
        raise InvalidInput("invalid time range", problems)
    if "from" in bounds and "to" in bounds and bounds["from"] > bounds["to"]:
        raise InvalidInput.on("from", "from must not be after to")
    filters = []
    if "from" in bounds:
        filters.append(Filter("occurred_at", "gte", bounds["from"]))
    if "to" in bounds:
        filters.append(Filter("occurred_at", "lt", bounds["to"]))
    return filters


def _trail(services: ReadServices) -> AuditTrail:
    if services.audit is None:
        raise RuntimeError("the read API was built without an audit trail")
    return services.audit


@router.get("/events", summary="The whole event log in position order, filtered, cursor-paginated (auditors)")
def audit_events(request: Request, _auditor: Auditor, _position: IndexPosition, services: Services) -> dict[str, Any]:
    listing = ListRequest(request.url, request.query_params, AUDIT_INDEX, [Sort("position")],
                          extra_allowed=set(_TIME_PARAMS), cursor_only=True)
    result = services.store.query(AUDIT_INDEX, listing.query(_time_filters(request)))
    stored = {p: (event, link) for p, event, link in _trail(services).events_at([r["position"] for r in result.rows])}
    return listing.envelope([_item(row, stored.get(row["position"])) for row in result.rows], result)


def _item(row: dict[str, Any], stored: tuple[Any, str | None] | None) -> dict[str, Any]:
    where = {"aggregateId": row["aggregate_id"], "aggregateType": row["aggregate_type"]}
    if stored is None:
        # Indexed, so once written, but gone from the event store: say so, never skip it.
        log.warning("audit: indexed event missing from the event store", extra={"position": row["position"]})
        return {"position": row["position"], "type": row["type"], "occurredAt": row["occurred_at"],
                "actorId": row["actor_id"], **where, "link": None, "removed": True}
    event, link = stored
    return {**describe(row["position"], event), **where, "link": link}


@router.get(
    "/export",
    summary="JSON Lines of the stored events and their links, over the positions covering a time range (auditors)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def audit_export(request: Request, _auditor: Auditor, index_position: IndexPosition,
                 services: Services) -> StreamingResponse:
    unknown = [name for name in request.query_params if name not in {*_TIME_PARAMS, "minPosition", "maxWaitMs"}]
    if unknown:
        raise InvalidInput("invalid export parameters", [FieldProblem(n, "unknown query parameter") for n in unknown])
    filters = _time_filters(request)
    trail = _trail(services)
    first = _edge(services, filters, descending=False) if "from" in request.query_params else 1
    last = _edge(services, filters, descending=True) if "to" in request.query_params else trail.head_position()
    empty = first is None or last is None or first > last
    body = iter(()) if empty else trail.export(first, last)
    span = "none" if empty else f"{first}-{last}"
    return StreamingResponse(body, media_type="application/x-ndjson", headers={
        "X-Projection-Position": str(index_position),
        "X-Export-Positions": span,
        "Content-Disposition": f'attachment; filename="taskflow-audit-{span}.jsonl"',
    })


def _edge(services: ReadServices, filters: list[Filter], *, descending: bool) -> int | None:
    """The first (or last) position whose event occurred in the time range."""
    query = ListQuery(filters=filters, sort=[Sort("position", descending)], per_page=1, cursor_mode=True)
    rows = services.store.query(AUDIT_INDEX, query).rows
    return rows[0]["position"] if rows else None
