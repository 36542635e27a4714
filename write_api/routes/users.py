"""Registration (public), profile changes and deactivation.

A password is hashed (argon2, CPU-heavy by design) and tokens are revoked through the synchronous
token store, so that work happens in the threadpool: registration plans its command there and
awaits it; the other two are sync routes that FastAPI runs in the threadpool."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from commands.models import RegisterUser, UpdateUser
from write_api.deps import Context, Services, context_for, written
from write_api.idempotency import run_idempotently
from write_api.schemas import user_out

router = APIRouter(tags=["users"])


@router.post("/api/v1/users", status_code=201, summary="Register a user (public)")
async def register(body: RegisterUser, request: Request, services: Services) -> Response:
    async def produce() -> Response:
        command = await run_in_threadpool(services.app.register_user, body, context_for(request, None))
        result = await services.app.execute_async(command)
        return written(result, user_out(result.aggregate), status=201, location=f"/api/v1/users/{result.aggregate.id}")

    return await run_idempotently(request, None, services.idempotency, body, produce)


@router.put("/api/v1/users/{user_id}", summary="Change a user's name or password (self or admin)")
def update(user_id: UUID, body: UpdateUser, ctx: Context, services: Services) -> Response:
    result = services.app.execute(services.app.update_user(user_id, body, ctx))
    if body.password is not None:
        # A new password signs the user out everywhere.
        services.tokens.revoke_user(user_id)
    return written(result, user_out(result.aggregate))


@router.delete("/api/v1/users/{user_id}", summary="Deactivate a user (history stays)")
def deactivate(user_id: UUID, ctx: Context, services: Services) -> Response:
    result = services.app.execute(services.app.deactivate_user(user_id, ctx))
    services.tokens.revoke_user(user_id)
    return written(result, user_out(result.aggregate))
