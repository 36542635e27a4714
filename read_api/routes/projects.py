"""Projects the caller belongs to, one project with its members, and its member list."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from projections.projects import PROJECT_MEMBERS, PROJECTS
from projections.store import Filter, ReadModelReader, Row, Sort
from read_api.access import readable_project, readable_project_ids
from read_api.consistency import consistent
from read_api.deps import CurrentUser, Services
from read_api.query import ListRequest
from read_api.responses import single
from read_api.time_travel import AsOf, Version, live_row, point_in_time, project_at

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])
ProjectsPosition = Annotated[int, Depends(consistent("projects"))]


@router.get("", summary="Projects you are a member of (filter, sort, page or cursor)")
def list_projects(request: Request, principal: CurrentUser, services: Services, _: ProjectsPosition) -> dict[str, Any]:
    listing = ListRequest(request.url, request.query_params, PROJECTS, [Sort("name"), Sort("id")])
    scope = [Filter("deleted", "eq", False)]
    if not principal.is_admin:
        scope.append(Filter("id", "in", readable_project_ids(services.store, principal)))
    result = services.store.query(PROJECTS, listing.query(scope))
    return listing.envelope([PROJECTS.to_wire(r) for r in result.rows], result)


def _with_members(store: ReadModelReader, row: Row) -> dict[str, Any]:
    rows = sorted(store.find(PROJECT_MEMBERS, {"project_id": row["id"]}), key=lambda m: m["user_id"])
    return {**PROJECTS.to_wire(row), "members": [{"userId": m["user_id"], "role": m["role"]} for m in rows]}


@router.get("/{project_id}", summary="A project with its members, now or as it stood asOf an instant or at a version")
def get_project(project_id: UUID, request: Request, response: Response, principal: CurrentUser,
                services: Services, _: ProjectsPosition, asOf: AsOf = None, version: Version = None) -> Any:  # noqa: N803
    point = point_in_time(asOf, version)
    if point is None:
        row = readable_project(services.store, str(project_id), principal)
        return single(request, response, _with_members(services.store, row))
    with project_at(services, project_id, point, principal) as past:
        row = live_row(past.store.get(PROJECTS, {"id": str(project_id)}), point, "project")
        return {"data": _with_members(past.store, row), "meta": past.meta}


@router.get("/{project_id}/members", summary="A project's members and their roles")
def list_members(project_id: UUID, request: Request, principal: CurrentUser, services: Services,
                 _: ProjectsPosition) -> dict[str, Any]:
    readable_project(services.store, str(project_id), principal)
    listing = ListRequest(request.url, request.query_params, PROJECT_MEMBERS, [Sort("added_at"), Sort("user_id")])
    result = services.store.query(PROJECT_MEMBERS, listing.query([Filter("project_id", "eq", str(project_id))]))
    return listing.envelope([PROJECT_MEMBERS.to_wire(r) for r in result.rows], result)
