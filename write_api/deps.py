"""What the write routes need, declared as small interfaces; the composition root provides them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from uuid import UUID

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from commands.context import CommandContext
from commands.service import TaskFlowApplication, Written
from domain.errors import InvalidInput, Unauthenticated
from domain.identity import Principal
from write_api.idempotency import IdempotencyStore


class Tokens(Protocol):
    def issue(self, user: Any) -> dict[str, Any]: ...

    def refresh(self, refresh_token: str, find_user: Callable[[UUID], Any]) -> dict[str, Any]: ...

    async def verify_access(self, token: str) -> Principal: ...

    def logout(self, principal: Principal) -> None: ...

    def revoke_user(self, user_id: UUID) -> None: ...

    def jwks(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class UserClaims:
    """What a token says about its user (matches infra's token service's expectations)."""

    user_id: UUID
    email: str
    roles: Sequence[str]
    active: bool


class StartedRebuild(Protocol):
    projection: str
    generation: int
    state: str


class ProjectionRebuilds(Protocol):
    """Rebuilds a projection beside the live one, in the background (infra/rebuild.py)."""

    def start(self, name: str) -> StartedRebuild:
        """Raises NotFound for an unknown projection, Conflict if a rebuild of it runs."""


@dataclass
class WriteServices:
    app: TaskFlowApplication
    tokens: Tokens
    idempotency: IdempotencyStore
    rebuilds: ProjectionRebuilds | None = None


# Dependencies that do no I/O are async: FastAPI runs each sync one in the threadpool, a hop
# (and a GIL hand-over) per dependency per request.
async def get_services(request: Request) -> WriteServices:
    return request.app.state.write_services


Services = Annotated[WriteServices, Depends(get_services)]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("a bearer token is required")
    return token.strip()


async def get_principal(request: Request, services: Services) -> Principal:
    return await services.tokens.verify_access(bearer_token(request))


CurrentUser = Annotated[Principal, Depends(get_principal)]
_IF_MATCH = re.compile(r'^(?:W/)?"?(\d+)"?$')


def expected_version(request: Request) -> int | None:
    value = request.headers.get("if-match")
    if value is None or value.strip() == "*":
        return None
    match = _IF_MATCH.match(value.strip())
    if not match:
        raise InvalidInput.on("If-Match", 'If-Match must be a version ETag such as "3"')
    return int(match.group(1))


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or "unknown"


def context_for(request: Request, principal: Principal | None) -> CommandContext:
    rid = request_id(request)
    return CommandContext(
        actor_id=principal.user_id if principal else None,
        actor_roles=principal.roles if principal else (),
        request_id=rid,
        correlation_id=request.headers.get("x-correlation-id", rid)[:128],
        causation_id=rid,
        expected_version=expected_version(request),
    )


async def get_context(request: Request, principal: CurrentUser) -> CommandContext:
    return context_for(request, principal)


Context = Annotated[CommandContext, Depends(get_context)]


def written(result: Written, data: dict[str, Any], *, status: int = 200, location: str | None = None) -> JSONResponse:
    headers = {"ETag": f'"{result.version}"'}
    if location:
        headers["Location"] = location
    return JSONResponse(
        {"data": data, "meta": {"position": result.position, "version": result.version}},
        status_code=status,
        headers=headers,
    )
