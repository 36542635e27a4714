"""Sign in, token refresh (rotating), sign out, profile, and the public signing keys."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from domain.errors import NotFound, Unauthenticated
from write_api.deps import CurrentUser, Services, UserClaims
from write_api.schemas import user_out

router = APIRouter(tags=["auth"])


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=128)


class Refresh(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refreshToken: str = Field(min_length=1, max_length=4096)


def _claims(user: Any) -> UserClaims:
    return UserClaims(user_id=user.id, email=user.email, roles=tuple(user.roles), active=user.active)


@router.post("/api/v1/auth/login", summary="Sign in with e-mail and password")
def login(body: Login, services: Services) -> dict[str, Any]:
    user = services.app.authenticate(body.email, body.password)
    if user is None:
        raise Unauthenticated("invalid email or password")
    return {"data": services.tokens.issue(_claims(user))}


@router.post("/api/v1/auth/refresh", summary="Exchange a refresh token for a new token pair")
def refresh(body: Refresh, services: Services) -> dict[str, Any]:
    def find_user(user_id: UUID) -> UserClaims | None:
        try:
            return _claims(services.app.get_user(user_id))
        except NotFound:  # an unknown user simply gets no tokens
            return None
        # Anything else (the event store unreachable) propagates: a 503, and the session is kept.

    return {"data": services.tokens.refresh(body.refreshToken, find_user)}


@router.post("/api/v1/auth/logout", status_code=204, summary="Revoke this access token and its session")
def logout(principal: CurrentUser, services: Services) -> Response:
    services.tokens.logout(principal)
    return Response(status_code=204)


@router.get("/api/v1/auth/profile", summary="The signed-in user")
def profile(principal: CurrentUser, services: Services) -> dict[str, Any]:
    return {"data": user_out(services.app.get_user(principal.user_id))}


@router.get("/.well-known/jwks.json", summary="Public keys that verify TaskFlow's tokens")
def jwks(services: Services) -> dict[str, Any]:
    return services.tokens.jwks()
