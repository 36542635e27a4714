"""The write API's routes. The composition root (infra) builds the app around them and provides
``app.state.write_services``."""

from __future__ import annotations

from fastapi import APIRouter

from write_api.routes import admin, auth, projects, tasks, users


def write_router() -> APIRouter:
    router = APIRouter()
    for module in (auth, users, projects, tasks, admin):
        router.routes.extend(module.router.routes)
    return router
