"""Task and comment commands.

Async routes: a command is checked on the event loop and handed to the group-commit writer, and
the loop awaits its outcome; no thread waits per request (see commands/service.py)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response

from commands.models import AddComment, CreateTask, EditComment, UpdateTask
from write_api.deps import Context, CurrentUser, Services, written
from write_api.idempotency import run_idempotently
from write_api.schemas import comment_out, task_out

router = APIRouter(prefix="/api/v1", tags=["tasks"])


@router.post("/projects/{project_id}/tasks", status_code=201, summary="Create a task in a project")
async def create_task(project_id: UUID, body: CreateTask, request: Request, principal: CurrentUser, ctx: Context,
                      services: Services) -> Response:
    async def produce() -> Response:
        result = await services.app.execute_async(services.app.create_task(project_id, body, ctx))
        return written(result, task_out(result.aggregate), status=201, location=f"/api/v1/tasks/{result.aggregate.id}")

    return await run_idempotently(request, principal, services.idempotency, body, produce)


@router.patch("/tasks/{task_id}", summary="Change a task: fields, status (within the workflow), assignees")
async def update_task(task_id: UUID, body: UpdateTask, ctx: Context, services: Services) -> Response:
    result = await services.app.execute_async(services.app.update_task(task_id, body, ctx))
    return written(result, task_out(result.aggregate))


@router.delete("/tasks/{task_id}", summary="Delete a task (soft: its history stays)")
async def delete_task(task_id: UUID, ctx: Context, services: Services) -> Response:
    result = await services.app.execute_async(services.app.delete_task(task_id, ctx))
    return written(result, task_out(result.aggregate))


@router.post("/tasks/{task_id}/comments", status_code=201, summary="Comment on a task")
async def add_comment(task_id: UUID, body: AddComment, request: Request, principal: CurrentUser, ctx: Context,
                      services: Services) -> Response:
    async def produce() -> Response:
        result = await services.app.execute_async(services.app.add_comment(task_id, body, ctx))
        return written(result, comment_out(result.aggregate), status=201)

    return await run_idempotently(request, principal, services.idempotency, body, produce)


@router.patch("/comments/{comment_id}", summary="Edit a comment (author only)")
async def edit_comment(comment_id: UUID, body: EditComment, ctx: Context, services: Services) -> Response:
    result = await services.app.execute_async(services.app.edit_comment(comment_id, body, ctx))
    return written(result, comment_out(result.aggregate))


@router.delete("/comments/{comment_id}", summary="Delete a comment (author only)")
async def delete_comment(comment_id: UUID, ctx: Context, services: Services) -> Response:
    result = await services.app.execute_async(services.app.delete_comment(comment_id, ctx))
    return written(result, comment_out(result.aggregate))
