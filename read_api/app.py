"""The read API's routes. The composition root (infra) builds the app around them and provides
``app.state.read_services``."""

from __future__ import annotations

from fastapi import APIRouter

from read_api.routes import admin, analytics, audit, history, projects, search, tasks, users


def read_router() -> APIRouter:
    router = APIRouter()
    for module in (users, projects, tasks, history, search, analytics, audit, admin):
        router.include_router(module.router)
    return router
