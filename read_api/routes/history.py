"""History of any aggregate, read from the event store (the source of truth), in version order.

Who may read it: a project's members for the project, its tasks and comments; a user themself,
admins and auditors for a user."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic.alias_generators import to_camel

from domain.clock import iso_utc
from domain.comment import Comment
from domain.errors import NotFound
from domain.identity import Principal
from domain.project import Project
from domain.task import Task
from domain.user import User
from read_api.access import may_read_past_of
from read_api.consistency import consistent
from read_api.deps import CurrentUser, ReadServices, Services

router = APIRouter(prefix="/api/v1", tags=["history"])
# The events come from the event store, but who may read them is decided from the projects read
# model: a client that was just added to a project waits for it like on any other read.
AccessPosition = Annotated[int, Depends(consistent("projects"))]
# Never shown, even to auditors: a hash is still a secret.
REDACTED_FIELDS = {"password_hash"}
_INTERNAL_FIELDS = {"originator_id", "originator_version", "timestamp", "metadata", "originator_topic"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return iso_utc(value) if hasattr(value, "tzinfo") else value.isoformat()
    return value


def describe(position: int, event: Any) -> dict[str, Any]:
    metadata = getattr(event, "metadata", {}) or {}
    data = {
        to_camel(k): ("[redacted]" if k in REDACTED_FIELDS else _jsonable(v))
        for k, v in vars(event).items()
        if k not in _INTERNAL_FIELDS
    }
    return {
        "position": position,
        "version": event.originator_version,
        "type": type(event).__qualname__,
        "occurredAt": iso_utc(event.timestamp),
        "actorId": metadata.get("actorId"),
        "requestId": metadata.get("requestId"),
        "correlationId": metadata.get("correlationId"),
        "causationId": metadata.get("causationId"),
        "data": data,
    }


def _history(services: ReadServices, aggregate_id: UUID, kind: type, principal: Principal, page: int,
             per_page: int) -> dict[str, Any]:
    events = services.history.events_of(aggregate_id)
    if not events or not isinstance(events[0][1], kind.Event):
        raise NotFound(f"{kind.__name__.lower()} not found")
    _authorize(services, kind, events[0][1], aggregate_id, principal)
    total = len(events)
    chunk = events[(page - 1) * per_page : page * per_page]
    return {
        "data": [describe(p, e) for p, e in chunk],
        "meta": {"total": total, "page": page, "perPage": per_page, "totalPages": max(1, -(-total // per_page))},
    }


def _authorize(services: ReadServices, kind: type, first: Any, aggregate_id: UUID, principal: Principal) -> None:
    if kind is User:
        if principal.user_id != aggregate_id and not (principal.is_admin or principal.is_auditor):
            raise NotFound("user not found")
        return
    project_id = aggregate_id if kind is Project else first.project_id
    may_read_past_of(services.store, str(project_id), principal, kind.__name__.lower())


def _route(path: str, kind: type) -> None:
    def history(
        aggregate_id: UUID,
        request: Request,
        principal: CurrentUser,
        services: Services,
        _: AccessPosition,
        page: int = Query(1, ge=1),
        perPage: int = Query(50, ge=1, le=500),  # noqa: N803
    ) -> dict[str, Any]:
        return _history(services, aggregate_id, kind, principal, page, perPage)

    router.add_api_route(
        f"/{path}/{{aggregate_id}}/history",
        history,
        methods=["GET"],
        summary=f"The {kind.__name__.lower()}'s events in order, from the event store",
        name=f"{path}_history",
    )


for _path, _kind in (("users", User), ("projects", Project), ("tasks", Task), ("comments", Comment)):
    _route(_path, _kind)
