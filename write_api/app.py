"""The write API's routes. The composition root (infra) builds the app around them and provides
``app.state.write_services``."""

from __future__ import annotations

from fastapi import APIRouter

from write_api.routes import admin, auth, projects, tasks, users


def write_router() -> APIRouter:
    router = APIRouter()
    for module in (auth, users, projects, tasks, admin):
        # The routes themselves, not include_router: FastAPI 0.165 keeps included routers as a
        # tree it walks twice per request (match, then handle), ~40 µs a request here. The module
        # routers set only a prefix and tags, which their routes already carry.
        router.routes.extend(module.router.routes)
    return router
