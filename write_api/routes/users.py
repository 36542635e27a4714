"""Registration (public), profile changes and deactivation."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response

from commands.models import RegisterUser, UpdateUser
from write_api.deps import Context, Services, context_for, written
from write_api.idempotency import run_idempotently
from write_api.schemas import user_out

router = APIRouter(tags=["users"])


@router.post("/api/v1/users", status_code=201, summary="Register a user (public)")
def register(body: RegisterUser, request: Request, services: Services) -> Response:
    def produce() -> Response:
        result = services.app.register_user(body, context_for(request, None))
        return written(result, user_out(result.aggregate), status=201, location=f"/api/v1/users/{result.aggregate.id}")

    return run_idempotently(request, None, services.idempotency, body, produce)


@router.put("/api/v1/users/{user_id}", summary="Change a user's name or password (self or admin)")
def update(user_id: UUID, body: UpdateUser, ctx: Context, services: Services) -> Response:
    result = services.app.update_user(user_id, body, ctx)
    if body.password is not None:
        # A new password signs the user out everywhere.
        services.tokens.revoke_user(user_id)
    return written(result, user_out(result.aggregate))


@router.delete("/api/v1/users/{user_id}", summary="Deactivate a user (history stays)")
def deactivate(user_id: UUID, ctx: Context, services: Services) -> Response:
    result = services.app.deactivate_user(user_id, ctx)
    services.tokens.revoke_user(user_id)
    return written(result, user_out(result.aggregate))
