"""Users, and the projects a user belongs to."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from domain.errors import NotFound
from projections.projects import PROJECT_MEMBERS, PROJECTS
from projections.store import Filter, Sort
from projections.users import USERS
from read_api.access import readable_project_ids
from read_api.consistency import consistent
from read_api.deps import CurrentUser, Services
from read_api.query import ListRequest
from read_api.responses import single

router = APIRouter(prefix="/api/v1/users", tags=["users"])
UsersPosition = Annotated[int, Depends(consistent("users"))]
ProjectsPosition = Annotated[int, Depends(consistent("projects"))]


@router.get("", summary="List users (filter, sort, page or cursor)")
def list_users(request: Request, principal: CurrentUser, services: Services, _: UsersPosition) -> dict[str, Any]:
    listing = ListRequest(request.url, request.query_params, USERS, [Sort("created_at"), Sort("id")])
    result = services.store.query(USERS, listing.query([]))
    return listing.envelope([USERS.to_wire(r) for r in result.rows], result)


@router.get("/{user_id}", summary="A user")
def get_user(user_id: UUID, request: Request, response: Response, principal: CurrentUser, services: Services,
             _: UsersPosition) -> Any:
    row = services.store.get(USERS, {"id": str(user_id)})
    if row is None:
        raise NotFound("user not found")
    return single(request, response, USERS.to_wire(row))


@router.get("/{user_id}/projects", summary="Projects the user belongs to (that you may also read)")
def user_projects(user_id: UUID, request: Request, principal: CurrentUser, services: Services,
                  _: ProjectsPosition) -> dict[str, Any]:
    theirs = {m["project_id"] for m in services.store.find(PROJECT_MEMBERS, {"user_id": str(user_id)})}
    visible = theirs if principal.is_admin else theirs & set(readable_project_ids(services.store, principal))
    listing = ListRequest(request.url, request.query_params, PROJECTS, [Sort("name"), Sort("id")])
    scope = [Filter("id", "in", sorted(visible)), Filter("deleted", "eq", False)]
    result = services.store.query(PROJECTS, listing.query(scope))
    return listing.envelope([PROJECTS.to_wire(r) for r in result.rows], result)
