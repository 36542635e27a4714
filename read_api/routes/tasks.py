"""A project's tasks, one task, its comments and its activity feed."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from domain.errors import NotFound
from domain.identity import Principal
from projections.activity import TASK_ACTIVITY
from projections.comments import COMMENTS
from projections.store import Filter, ReadModelReader, Row, Sort
from projections.tasks import TASKS
from read_api.access import readable_project
from read_api.consistency import consistent
from read_api.deps import CurrentUser, Services
from read_api.query import ListRequest
from read_api.responses import single
from read_api.time_travel import AsOf, Version, board_at, live_row, point_in_time, task_at

router = APIRouter(prefix="/api/v1", tags=["tasks"])
TasksPosition = Annotated[int, Depends(consistent("tasks", "projects"))]
CommentsPosition = Annotated[int, Depends(consistent("comments", "tasks", "projects"))]
ActivityPosition = Annotated[int, Depends(consistent("activity", "tasks", "projects"))]


def readable_task(store: ReadModelReader, task_id: UUID, principal: Principal) -> Row:
    row = store.get(TASKS, {"id": str(task_id)})
    if row is None or row["deleted"]:
        raise NotFound("task not found")
    try:
        readable_project(store, row["project_id"], principal)
    except NotFound:
        raise NotFound("task not found") from None
    return row


def _task_page(store: ReadModelReader, project_id: UUID, listing: ListRequest) -> dict[str, Any]:
    scope = [Filter("project_id", "eq", str(project_id)), Filter("deleted", "eq", False)]
    result = store.query(TASKS, listing.query(scope))
    return listing.envelope([TASKS.to_wire(r) for r in result.rows], result)


@router.get("/projects/{project_id}/tasks", summary="A project's tasks (filter, sort, page or cursor), now or asOf")
def list_tasks(project_id: UUID, request: Request, principal: CurrentUser, services: Services,
               _: TasksPosition, asOf: AsOf = None) -> dict[str, Any]:  # noqa: N803
    point = point_in_time(asOf, None)
    if point is None:
        readable_project(services.store, str(project_id), principal)
    listing = ListRequest(request.url, request.query_params, TASKS, [Sort("created_at"), Sort("id")],
                          extra_allowed={"asOf"})
    if point is None:
        return _task_page(services.store, project_id, listing)
    with board_at(services, project_id, point, principal) as past:
        body = _task_page(past.store, project_id, listing)
    return {**body, "meta": {**body["meta"], **past.meta}}


@router.get("/tasks/{task_id}", summary="A task, now or as it stood asOf an instant or at a version")
def get_task(task_id: UUID, request: Request, response: Response, principal: CurrentUser, services: Services,
             _: TasksPosition, asOf: AsOf = None, version: Version = None) -> Any:  # noqa: N803
    point = point_in_time(asOf, version)
    if point is None:
        return single(request, response, TASKS.to_wire(readable_task(services.store, task_id, principal)))
    with task_at(services, task_id, point, principal) as past:
        row = live_row(past.store.get(TASKS, {"id": str(task_id)}), point, "task")
        return {"data": TASKS.to_wire(row), "meta": past.meta}


@router.get("/tasks/{task_id}/comments", summary="A task's comments, oldest first")
def list_comments(task_id: UUID, request: Request, principal: CurrentUser, services: Services,
                  _: CommentsPosition) -> dict[str, Any]:
    readable_task(services.store, task_id, principal)
    listing = ListRequest(request.url, request.query_params, COMMENTS, [Sort("created_at"), Sort("id")])
    scope = [Filter("task_id", "eq", str(task_id)), Filter("deleted", "eq", False)]
    result = services.store.query(COMMENTS, listing.query(scope))
    return listing.envelope([COMMENTS.to_wire(r) for r in result.rows], result)


@router.get("/tasks/{task_id}/activity", summary="What happened to a task and its comments, in order")
def list_activity(task_id: UUID, request: Request, principal: CurrentUser, services: Services,
                  _: ActivityPosition) -> dict[str, Any]:
    readable_task(services.store, task_id, principal)
    listing = ListRequest(request.url, request.query_params, TASK_ACTIVITY, [Sort("position")])
    result = services.store.query(TASK_ACTIVITY, listing.query([Filter("task_id", "eq", str(task_id))]))
    return listing.envelope([TASK_ACTIVITY.to_wire(r) for r in result.rows], result)
