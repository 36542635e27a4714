"""Task and comment commands."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response

from commands.models import AddComment, CreateTask, EditComment, UpdateTask
from write_api.deps import Context, CurrentUser, Services, written
from write_api.idempotency import run_idempotently
from write_api.schemas import comment_out, task_out

router = APIRouter(prefix="/api/v1", tags=["tasks"])


@router.post("/projects/{project_id}/tasks", status_code=201, summary="Create a task in a project")
def create_task(project_id: UUID, body: CreateTask, request: Request, principal: CurrentUser, ctx: Context,
                services: Services) -> Response:
    def produce() -> Response:
        result = services.app.create_task(project_id, body, ctx)
        return written(result, task_out(result.aggregate), status=201, location=f"/api/v1/tasks/{result.aggregate.id}")

    return run_idempotently(request, principal, services.idempotency, body, produce)


@router.patch("/tasks/{task_id}", summary="Change a task: fields, status (within the workflow), assignees")
def update_task(task_id: UUID, body: UpdateTask, ctx: Context, services: Services) -> Response:
    result = services.app.update_task(task_id, body, ctx)
    return written(result, task_out(result.aggregate))


@router.delete("/tasks/{task_id}", summary="Delete a task (soft: its history stays)")
def delete_task(task_id: UUID, ctx: Context, services: Services) -> Response:
    result = services.app.delete_task(task_id, ctx)
    return written(result, task_out(result.aggregate))


@router.post("/tasks/{task_id}/comments", status_code=201, summary="Comment on a task")
def add_comment(task_id: UUID, body: AddComment, request: Request, principal: CurrentUser, ctx: Context,
                services: Services) -> Response:
    def produce() -> Response:
        result = services.app.add_comment(task_id, body, ctx)
        return written(result, comment_out(result.aggregate), status=201)

    return run_idempotently(request, principal, services.idempotency, body, produce)


@router.patch("/comments/{comment_id}", summary="Edit a comment (author only)")
def edit_comment(comment_id: UUID, body: EditComment, ctx: Context, services: Services) -> Response:
    result = services.app.edit_comment(comment_id, body, ctx)
    return written(result, comment_out(result.aggregate))


@router.delete("/comments/{comment_id}", summary="Delete a comment (author only)")
def delete_comment(comment_id: UUID, ctx: Context, services: Services) -> Response:
    result = services.app.delete_comment(comment_id, ctx)
    return written(result, comment_out(result.aggregate))
