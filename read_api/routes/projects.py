"""Projects the caller belongs to, one project with its members, and its member list."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from projections.projects import PROJECT_MEMBERS, PROJECTS
from projections.store import Filter, Sort
from read_api.access import readable_project, readable_project_ids
from read_api.consistency import consistent
from read_api.deps import CurrentUser, Services
from read_api.query import ListRequest
from read_api.responses import single

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


def _members(services: Any, project_id: str) -> list[dict[str, Any]]:
    rows = sorted(services.store.find(PROJECT_MEMBERS, {"project_id": project_id}), key=lambda m: m["user_id"])
    return [{"userId": m["user_id"], "role": m["role"]} for m in rows]


@router.get("/{project_id}", summary="A project, with its members")
def get_project(project_id: UUID, request: Request, response: Response, principal: CurrentUser,
                services: Services, _: ProjectsPosition) -> Any:
    row = readable_project(services.store, str(project_id), principal)
    return single(request, response, {**PROJECTS.to_wire(row), "members": _members(services, str(project_id))})


@router.get("/{project_id}/members", summary="A project's members and their roles")
def list_members(project_id: UUID, request: Request, principal: CurrentUser, services: Services,
                 _: ProjectsPosition) -> dict[str, Any]:
    readable_project(services.store, str(project_id), principal)
    listing = ListRequest(request.url, request.query_params, PROJECT_MEMBERS, [Sort("added_at"), Sort("user_id")])
    result = services.store.query(PROJECT_MEMBERS, listing.query([Filter("project_id", "eq", str(project_id))]))
    return listing.envelope([PROJECT_MEMBERS.to_wire(r) for r in result.rows], result)
