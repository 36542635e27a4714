"""Operator commands on the read side (system admins only): rebuilding a projection."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from domain.errors import Forbidden, NotFound
from write_api.deps import CurrentUser, Services

router = APIRouter(tags=["admin"])

# Where a rebuild's progress shows (the read API's projection status, backed by projection_rebuilds).
STATUS_PATH = "/api/v1/admin/projections"


@router.post(
    "/api/v1/admin/projections/{name}/rebuild",
    status_code=202,
    summary="Rebuild a projection beside the live one, then swap it in (admin)",
)
def rebuild(name: str, principal: CurrentUser, services: Services) -> JSONResponse:
    if not principal.is_admin:
        raise Forbidden("only system admins may rebuild projections")
    if services.rebuilds is None:
        raise NotFound(f"unknown projection {name}")
    started = services.rebuilds.start(name)
    return JSONResponse(
        {
            "data": {"projection": started.projection, "generation": started.generation, "state": started.state},
            "links": {"status": STATUS_PATH},
        },
        status_code=202,
        headers={"Location": STATUS_PATH},
    )
