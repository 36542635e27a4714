"""The composition root: the one place that chooses backends and wires them into the apps."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import psycopg
from eventsourcing.postgres import PostgresApplicationRecorder
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from commands.passwords import PasswordHasher
from commands.service import TaskFlowApplication
from infra.audit_log import StoredAuditLog
from infra.event_history import StoredEventHistory
from infra.http import error_body, install_http_plumbing, request_id_of
from infra.keys import KeyRing
from infra.projection_ops import ProjectionOperations
from infra.pg_wakeup import EventStoreWakeup
from infra.projector import ProjectionRunner, Projector
from infra.settings import Settings
from infra.postgres_readmodels import PostgresReadModelStore
from infra.ratelimit import InProcessCounter, RateLimiter, RedisCounter
from infra.sqlite_readmodels import ScratchReadModelStore, SQLiteReadModelStore
from infra.sqlite_search import SQLiteSearchStore
from infra.postgres_search import PostgresSearchStore
from infra.elasticsearch_search import ElasticsearchSearchStore
from infra.rebuild import ProjectionRebuilds, RebuildTarget
from infra.redis_cache import CachedReader, RowCache
from infra.redis_clients import AsyncRedis
from infra.redis_clients import connect as connect_redis
from infra.redis_state import RedisStateStore
from infra.sqlite_state import SQLiteStateStore
from infra.tokens import TokenService
from projections.base import Projection
from projections.registry import all_projections
from projections.search import SearchProjection, SearchStore
from projections.store import ReadModelReader, ReadModelStore
from read_api.app import read_router
from read_api.deps import ReadServices
from write_api.app import write_router
from write_api.deps import WriteServices
from write_api.idempotency import finish_in_flight

if TYPE_CHECKING:  # kafka-python is imported only by processes that use Kafka
    from infra.kafka_consumer import KafkaProjector
    from infra.kafka_relay import KafkaCheck, KafkaRelay

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
    # Keeps the read models up to date: follows the log, or (with Kafka) consumes the topic.
    projector: Projector | KafkaProjector
    rate_limiter: RateLimiter
    # Redis from the APIs' event loops (revocation checks, rate limits); None on the embedded default.
    async_redis: AsyncRedis | None = None
    checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    search: SearchStore | None = None
    # With Kafka: publishes the log to the topic (started by `serve` and `relay` only).
    relay: KafkaRelay | None = None
    kafka_check: KafkaCheck | None = None
    # Status, dead letters, retry and skip (the admin routes and `taskflow projections`).
    operations: ProjectionOperations | None = None
    # Rebuilds a projection beside the live one (CLI and admin route).
    rebuilds: ProjectionRebuilds | None = None
    # PostgreSQL event store: wakes the relay and the log-following projector of this process
    # when another process commits events (started with them).
    wakeup: EventStoreWakeup | None = None

    def close(self) -> None:
        if self.rebuilds is not None:
            self.rebuilds.stop()
        if self.wakeup is not None:
            self.wakeup.stop()
        self.projector.stop()
        if self.relay is not None:
            self.relay.stop()
        if self.kafka_check is not None:
            self.kafka_check.close()
        self.app.close()
        if self.search is not None:
            self.search.close()
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
            # Keeps the tamper-evident hash chain in each append's transaction.
            "APPLICATION_RECORDER_TOPIC": "infra.event_chain:ChainedSQLiteApplicationRecorder",
        }
    url = urlsplit(settings.database_url)
    if url.scheme not in ("postgres", "postgresql") or not url.path.strip("/"):
        raise ValueError("DATABASE_URL must look like postgresql://user:password@host:port/database")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "infra.event_chain:ChainedPostgresApplicationRecorder",
        "POSTGRES_DBNAME": unquote(url.path.strip("/")),
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or ""),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        "POSTGRES_POOL_SIZE": "10",
        "POSTGRES_MAX_OVERFLOW": "10",
        # eventsourcing retries a failed call 10 times, each waiting this long for a connection:
        # keep it short so an outage turns into a 503 in seconds, not minutes.
        "POSTGRES_CONNECT_TIMEOUT": "1",
        # POSTGRES_ENABLE_DB_FUNCTIONS stays off: it would skip the table lock that keeps
        # notification ids committing in order (gap-free for followers).
    }


def build_system(settings: Settings, *, projection_names: Sequence[str] | None = None) -> TaskFlowSystem:
    """``projection_names``: the projections this process keeps up to date (default: all)."""
    projections = all_projections()
    run = _select([*projections, SearchProjection()], projection_names)
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    app = TaskFlowApplication(
        env=event_store_env(settings),
        hasher=PasswordHasher(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib),
        group_commit_batch=settings.group_commit_max_batch,
    )
    store: ReadModelStore = (
        PostgresReadModelStore(settings.database_url) if settings.database_url
        else SQLiteReadModelStore(data / "readmodels.db")
    )
    redis_client = connect_redis(settings.redis_url) if settings.redis_url else None
    async_redis = AsyncRedis(settings.redis_url) if settings.redis_url else None
    state: SQLiteStateStore | RedisStateStore = (
        RedisStateStore(redis_client, async_redis, prefix=settings.redis_prefix)
        if redis_client and async_redis else SQLiteStateStore(data / "state.db")
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
    search = _search_store(settings, store)
    kafka = settings.kafka_bootstrap_servers

    def store_of(projection: Projection) -> Any:
        return search if isinstance(projection, SearchProjection) else store

    def cache_of(projection: Projection) -> RowCache | None:
        """The row cache, for the relational projections that use it (search has no rows to cache)."""
        return cache if projection.row_cache and not isinstance(projection, SearchProjection) else None

    # With Kafka every projection (search too: its stores track partitions) consumes the topic.
    follow = [] if kafka else run
    runners = [ProjectionRunner(p, store_of(p), app.recorder, app.mapper, cache=cache_of(p)) for p in follow]
    projector: Projector | KafkaProjector = Projector(runners, poll_interval=settings.projector_poll_seconds)
    relay: KafkaRelay | None = None
    kafka_check: KafkaCheck | None = None
    if kafka:
        from infra.kafka_consumer import KafkaProjectionConsumer, KafkaProjector
        from infra.kafka_relay import KafkaCheck, KafkaRelay

        consumers = [
            KafkaProjectionConsumer(p, store_of(p), app.mapper, kafka, topic=settings.kafka_topic,
                                    partitions=settings.kafka_partitions, group_prefix=settings.kafka_group_prefix,
                                    cache=cache_of(p))
            for p in run
        ]
        projector = KafkaProjector(consumers)
        relay = KafkaRelay(app.recorder, store, kafka, mapper=app.mapper, topic=settings.kafka_topic,
                           partitions=settings.kafka_partitions, poll_interval=settings.projector_poll_seconds)
        app.on_saved(relay.wake)
        kafka_check = KafkaCheck(kafka)
    app.on_saved(projector.wake)
    wakeup = (
        EventStoreWakeup(app.recorder, [projector.wake, *([relay.wake] if relay else [])])
        if isinstance(app.recorder, PostgresApplicationRecorder) else None
    )
    history = StoredEventHistory(app)
    rebuilds = ProjectionRebuilds(
        {**{p.name: RebuildTarget(p, store, cache if p.row_cache else None) for p in projections},
         SearchProjection.name: RebuildTarget(SearchProjection(), search)},
        store, app.recorder, app.mapper,
    )
    operations = ProjectionOperations(projector.runners, store, app.recorder, app.mapper,  # type: ignore[arg-type]
                                      relay_name=relay.name if relay else None,
                                      latest_rebuild=rebuilds.log.latest)
    return TaskFlowSystem(
        settings=settings,
        app=app,
        store=store,
        reader=CachedReader(store, cache, {t.name: p.name for p in projections if p.row_cache for t in p.tables}) if cache else store,
        state=state,
        tokens=tokens,
        history=history,
        projector=projector,
        async_redis=async_redis,
        rate_limiter=RateLimiter(
            RedisCounter(async_redis, settings.redis_prefix) if async_redis else InProcessCounter(),
            per_user=settings.rate_limit_per_minute,
            anonymous=settings.rate_limit_anonymous_per_minute,
        ),
        checks={"eventStore": _quick_postgres_ping(settings.database_url) if settings.database_url else history.ping, "readModels": store.ping, "state": state.ping,
                **({"search": search.ping} if settings.elasticsearch_url else {})},
        search=search,
        relay=relay,
        kafka_check=kafka_check,
        operations=operations,
        rebuilds=rebuilds,
        wakeup=wakeup,
    )


def _select(projections: list[Projection], names: Sequence[str] | None) -> list[Projection]:
    if names is None:
        return projections
    known = {p.name: p for p in projections}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown projection {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in dict.fromkeys(names)]


def _search_store(settings: Settings, store: ReadModelStore) -> SearchStore:
    """Elasticsearch when configured; else full-text search in the read-model database."""
    if settings.elasticsearch_url:
        # Its dead letters go to the read-model database (Elasticsearch has no transactions).
        return ElasticsearchSearchStore(settings.elasticsearch_url, alias=settings.elasticsearch_index_prefix,
                                        dead_letters=store.dead_letter_transaction)  # type: ignore[attr-defined]
    if isinstance(store, PostgresReadModelStore):
        return PostgresSearchStore(store.pool)
    return SQLiteSearchStore(settings.data_dir / "readmodels.db")


def build_http_app(
    system: TaskFlowSystem, *, write: bool = True, read: bool = True, run_projector: bool = True
) -> FastAPI:
    """An ASGI app serving the write API, the read API, or both on one port."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_projector:
            if system.relay is not None:
                system.relay.start()
            system.projector.start()
            if system.wakeup is not None:
                system.wakeup.start()
        yield
        # Requests cancelled by the server's shutdown may still be recording an idempotent
        # outcome: let them end before the clients they need are closed.
        await finish_in_flight(timeout=10)
        if system.async_redis is not None:
            await system.async_redis.aclose()
        if run_projector:
            if system.wakeup is not None:
                system.wakeup.stop()
            system.projector.stop()
            if system.relay is not None:
                system.relay.stop()

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
        app.state.write_services = WriteServices(system.app, system.tokens, system.state, rebuilds=system.rebuilds)
        app.router.routes.extend(write_router().routes)  # flat, not included: see write_router()
    if read:
        app.state.read_services = ReadServices(
            store=system.reader,
            verifier=system.tokens,
            history=system.history,
            wait_default_ms=system.settings.consistency_wait_default_ms,
            wait_max_ms=system.settings.consistency_wait_max_ms,
            search=system.search,
            scratch_store=ScratchReadModelStore,
            audit=StoredAuditLog(system.app),
            projections=system.operations,
        )
        app.include_router(read_router())
    if run_projector and system.kafka_check is not None:
        system.checks.setdefault("kafka", system.kafka_check)
    _add_operations(app, system)
    return app


def _quick_postgres_ping(url: str) -> Callable[[], None]:
    """A readiness probe that answers within seconds (the event store's own calls retry for long)."""

    def ping() -> None:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    return ping


def _identify_with(tokens: TokenService) -> Callable[[str], str | None]:
    """The user a request's bearer token is signed for, or None."""

    def identify(authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return tokens.subject(token.strip())

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
