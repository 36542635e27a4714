"""Project commands: create, edit, archive/restore, delete, workflow, members.

Async routes, like the task routes: the command is awaited, not waited for in a thread."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response

from commands.models import AddMember, ChangeMemberRole, ChangeWorkflow, CreateProject, UpdateProject
from write_api.deps import Context, CurrentUser, Services, written
from write_api.idempotency import run_idempotently
from write_api.schemas import project_out

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])


@router.post("", status_code=201, summary="Create a project (the creator becomes its owner)")
async def create(body: CreateProject, request: Request, principal: CurrentUser, ctx: Context,
                 services: Services) -> Response:
    async def produce() -> Response:
        result = await services.app.execute_async(services.app.create_project(body, ctx))
        return written(result, project_out(result.aggregate), status=201,
                       location=f"/api/v1/projects/{result.aggregate.id}")

    return await run_idempotently(request, principal, services.idempotency, body, produce)


@router.patch("/{project_id}", summary="Rename or describe a project")
async def update(project_id: UUID, body: UpdateProject, ctx: Context, services: Services) -> Response:
    result = await services.app.execute_async(services.app.update_project(project_id, body, ctx))
    return written(result, project_out(result.aggregate))


@router.put("/{project_id}/workflow", summary="Replace the project's status workflow")
async def change_workflow(project_id: UUID, body: ChangeWorkflow, ctx: Context, services: Services) -> Response:
    result = await services.app.execute_async(services.app.change_workflow(project_id, body, ctx))
    return written(result, project_out(result.aggregate))


@router.post("/{project_id}/archive", summary="Archive a project (read-only until restored)")
async def archive(project_id: UUID, ctx: Context, services: Services) -> Response:
    result = await services.app.execute_async(services.app.archive_project(project_id, ctx))
    return written(result, project_out(result.aggregate))


@router.post("/{project_id}/restore", summary="Restore an archived project")
async def restore(project_id: UUID, ctx: Context, services: Services) -> Response:
    result = await services.app.execute_async(services.app.restore_project(project_id, ctx))
    return written(result, project_out(result.aggregate))


@router.delete("/{project_id}", summary="Delete a project (soft: its history stays)")
async def delete(project_id: UUID, ctx: Context, services: Services) -> Response:
    result = await services.app.execute_async(services.app.delete_project(project_id, ctx))
    return written(result, project_out(result.aggregate))


@router.post("/{project_id}/members", status_code=201, summary="Add a member with a role")
async def add_member(project_id: UUID, body: AddMember, request: Request, principal: CurrentUser, ctx: Context,
                     services: Services) -> Response:
    async def produce() -> Response:
        result = await services.app.execute_async(services.app.add_member(project_id, body, ctx))
        return written(result, project_out(result.aggregate), status=201)

    return await run_idempotently(request, principal, services.idempotency, body, produce)


@router.patch("/{project_id}/members/{user_id}", summary="Change a member's role")
async def change_member_role(project_id: UUID, user_id: UUID, body: ChangeMemberRole, ctx: Context,
                             services: Services) -> Response:
    result = await services.app.execute_async(services.app.change_member_role(project_id, user_id, body, ctx))
    return written(result, project_out(result.aggregate))


@router.delete("/{project_id}/members/{user_id}", summary="Remove a member (or leave)")
async def remove_member(project_id: UUID, user_id: UUID, ctx: Context, services: Services) -> Response:
    result = await services.app.execute_async(services.app.remove_member(project_id, user_id, ctx))
    return written(result, project_out(result.aggregate))

