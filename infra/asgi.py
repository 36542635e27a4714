"""ASGI app factories for running an API in several worker processes
(`taskflow write-api --workers N`): each worker builds its own system from the environment, with
its own connection pools and its own group-commit writer."""

from __future__ import annotations

from fastapi import FastAPI

from infra.composition import build_http_app, build_system
from infra.heap import freeze_startup_heap
from infra.logs import configure_logging
from infra.settings import Settings


def _app(*, write: bool, read: bool) -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_level)
    # API workers keep no read model up to date themselves: `taskflow project` does.
    app = build_http_app(build_system(settings, projection_names=[]), write=write, read=read, run_projector=False)
    freeze_startup_heap()
    return app


def write_api() -> FastAPI:
    return _app(write=True, read=False)


def read_api() -> FastAPI:
    return _app(write=False, read=True)
