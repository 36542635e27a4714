"""The composition root: the one place that chooses backends and wires them into the apps."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from commands.passwords import PasswordHasher
from commands.service import TaskFlowApplication
from domain.errors import TaskFlowError
from infra.event_history import StoredEventHistory
from infra.http import error_body, install_http_plumbing, request_id_of
from infra.keys import KeyRing
from infra.projector import ProjectionRunner, Projector
from infra.settings import Settings
from infra.postgres_readmodels import PostgresReadModelStore
from infra.ratelimit import InProcessCounter, RateLimiter, RedisCounter
from infra.sqlite_readmodels import SQLiteReadModelStore
from infra.redis_cache import CachedReader, RowCache
from infra.redis_state import RedisStateStore
from infra.redis_state import connect as connect_redis
from infra.sqlite_state import SQLiteStateStore
from infra.tokens import TokenService
from projections.registry import all_projections
from projections.store import ReadModelReader, ReadModelStore
from read_api.app import read_router
from read_api.deps import ReadServices
from write_api.app import write_router
from write_api.deps import WriteServices

log = logging.getLogger("taskflow")
VERSION = "0.1.0"


@dataclass
class TaskFlowSystem:
    settings: Settings
    app: TaskFlowApplication
    store: ReadModelStore
    # What the read API reads through: the store, or the store behind the Redis row cache.
    reader: ReadModelReader
    state: SQLiteStateStore | RedisStateStore
    tokens: TokenService
    history: StoredEventHistory
    projector: Projector
    rate_limiter: RateLimiter
    checks: dict[str, Callable[[], None]] = field(default_factory=dict)

    def close(self) -> None:
        self.projector.stop()
        self.app.close()
        self.store.close()
        self.state.close()


def _keys(settings: Settings) -> KeyRing:
    if settings.jwt_private_key:
        return KeyRing.from_pem(settings.jwt_private_key.encode())
    if settings.jwt_private_key_file:
        return KeyRing.from_pem(settings.jwt_private_key_file.read_bytes())
    return KeyRing.from_directory(settings.data_dir / "keys")


def event_store_env(settings: Settings) -> dict[str, str]:
    """eventsourcing's settings: PostgreSQL from DATABASE_URL, else SQLite under the data dir."""
    if settings.database_url is None:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.data_dir / "events.db"),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    url = urlsplit(settings.database_url)
    if url.scheme not in ("postgres", "postgresql") or not url.path.strip("/"):
        raise ValueError("DATABASE_URL must look like postgresql://user:password@host:port/database")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(url.path.strip("/")),
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or ""),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        "POSTGRES_POOL_SIZE": "10",
        "POSTGRES_MAX_OVERFLOW": "10",
        "POSTGRES_CONNECT_TIMEOUT": "5",
        # POSTGRES_ENABLE_DB_FUNCTIONS stays off: it would skip the table lock that keeps
        # notification ids committing in order (gap-free for followers).
    }


def build_system(settings: Settings) -> TaskFlowSystem:
    unsupported = [name for name, value in (("ELASTICSEARCH_URL", settings.elasticsearch_url),
                                            ("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)) if value]
    if unsupported:
        raise NotImplementedError(
            f"{', '.join(unsupported)} set, but that backend is not part of this build yet; unset it"
        )
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    app = TaskFlowApplication(
        env=event_store_env(settings),
        hasher=PasswordHasher(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib),
    )
    store: ReadModelStore = (
        PostgresReadModelStore(settings.database_url) if settings.database_url
        else SQLiteReadModelStore(data / "readmodels.db")
    )
    redis_client = connect_redis(settings.redis_url) if settings.redis_url else None
    state: SQLiteStateStore | RedisStateStore = (
        RedisStateStore(redis_client, prefix=settings.redis_prefix) if redis_client
        else SQLiteStateStore(data / "state.db")
    )
    tokens = TokenService(
        _keys(settings),
        state,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=settings.access_token_ttl_seconds,
        refresh_ttl=settings.refresh_token_ttl_seconds,
    )
    cache = RowCache(redis_client, settings.redis_prefix) if redis_client else None
    projections = all_projections()
    runners = [ProjectionRunner(p, store, app.recorder, app.mapper, cache=cache) for p in projections]
    projector = Projector(runners, poll_interval=settings.projector_poll_seconds)
    app.on_saved(projector.wake)
    history = StoredEventHistory(app)
    return TaskFlowSystem(
        settings=settings,
        app=app,
        store=store,
        reader=CachedReader(store, cache, {t.name: p.name for p in projections for t in p.tables}) if cache else store,
        state=state,
        tokens=tokens,
        history=history,
        projector=projector,
        rate_limiter=RateLimiter(
            RedisCounter(redis_client, settings.redis_prefix) if redis_client else InProcessCounter(),
            per_user=settings.rate_limit_per_minute,
            anonymous=settings.rate_limit_anonymous_per_minute,
        ),
        checks={"eventStore": history.ping, "readModels": store.ping, "state": state.ping},
    )


def build_http_app(
    system: TaskFlowSystem, *, write: bool = True, read: bool = True, run_projector: bool = True
) -> FastAPI:
    """An ASGI app serving the write API, the read API, or both on one port."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_projector:
            system.projector.start()
        yield
        if run_projector:
            system.projector.stop()

    parts = " and ".join(p for p, on in (("write", write), ("read", read)) if on)
    app = FastAPI(
        title=f"TaskFlow ({parts} API)",
        version=VERSION,
        description="Event-sourced project and task management. Contract: API.md.",
        lifespan=lifespan,
    )
    install_http_plumbing(
        app,
        max_body_bytes=system.settings.max_body_bytes,
        rate_limiter=system.rate_limiter,
        identify=_identify_with(system.tokens),
    )
    if write:
        app.state.write_services = WriteServices(system.app, system.tokens, system.state)
        app.include_router(write_router())
    if read:
        app.state.read_services = ReadServices(
            store=system.reader,
            verifier=system.tokens,
            history=system.history,
            wait_default_ms=system.settings.consistency_wait_default_ms,
            wait_max_ms=system.settings.consistency_wait_max_ms,
        )
        app.include_router(read_router())
    _add_operations(app, system)
    return app


def _identify_with(tokens: TokenService) -> Callable[[str], str | None]:
    """The user a request's bearer token verifiably belongs to, or None."""

    def identify(authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            return str(tokens.verify_access(token.strip()).user_id)
        except TaskFlowError:
            return None

    return identify


def _add_operations(app: FastAPI, system: TaskFlowSystem) -> None:
    @app.get("/health", tags=["operations"], summary="Liveness: the process answers (no dependencies)")
    def health() -> dict[str, Any]:
        return {"data": {"status": "ok"}}

    @app.get("/ready", tags=["operations"], summary="Readiness: every dependency answers")
    def ready(request: Request) -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in system.checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as error:  # a failing dependency is reported, not raised
                log.warning("dependency not ready", extra={"dependency": name, "error": repr(error)})
                results[name] = "unavailable"
        if all(v == "ok" for v in results.values()):
            return JSONResponse({"data": {"status": "ready", "checks": results}})
        body = error_body("NOT_READY", "a dependency is unavailable", request_id_of(request))
        body["error"]["details"] = [{"field": k, "message": v} for k, v in results.items() if v != "ok"]
        return JSONResponse(body, status_code=503)
