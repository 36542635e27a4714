"""Rate limiting per user (or, for anonymous requests, per client address) and per route:
fixed one-minute windows, counted in Redis in production and in process on the embedded default.
Over the limit: 429 RATE_LIMITED with Retry-After."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from domain.errors import TaskFlowError
from infra.redis_clients import AsyncRedis

WINDOW_SECONDS = 60
_ID_SEGMENT = re.compile(r"/[0-9a-fA-F-]{32,36}(?=/|$)")


class RateLimited(TaskFlowError):
    code = "RATE_LIMITED"

    def __init__(self, retry_after: int):
        super().__init__(f"too many requests; retry in {retry_after} s")
        self.headers = {"Retry-After": str(retry_after)}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int


class Counter(Protocol):
    async def hit(self, key: str, limit: int, now: float) -> Verdict:
        """Counted on every request, from the event loop: it must not block it."""


class InProcessCounter:
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    async def hit(self, key: str, limit: int, now: float) -> Verdict:
        window = int(now // WINDOW_SECONDS)
        with self._lock:  # held for a dict update, never across an await
            if len(self._counts) > 100_000:  # drop past windows now and then
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            count = self._counts.get((key, window), 0) + 1
            self._counts[(key, window)] = count
        return Verdict(count <= limit, int((window + 1) * WINDOW_SECONDS - now) + 1)


# One command per request: count, and give a new window its expiry, atomically (a transaction
# would be four commands to send and parse: MULTI, INCR, EXPIRE, EXEC).
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""


class RedisCounter:
    def __init__(self, redis: AsyncRedis, prefix: str = "taskflow:"):
        self.redis = redis
        self.prefix = prefix

    async def hit(self, key: str, limit: int, now: float) -> Verdict:
        window = int(now // WINDOW_SECONDS)
        name = f"{self.prefix}rate:{key}:{window}"
        count = await self.redis.run_script(_HIT, [name], [WINDOW_SECONDS * 2])
        return Verdict(int(count) <= limit, int((window + 1) * WINDOW_SECONDS - now) + 1)


def route_key(method: str, path: str) -> str:
    """Requests to the same route share a limit whatever the ids in their path."""
    return f"{method} {_ID_SEGMENT.sub('/:id', path)}"


class RateLimiter:
    def __init__(self, counter: Counter, *, per_user: int, anonymous: int):
        self.counter = counter
        self.per_user = per_user
        self.anonymous = anonymous

    @property
    def enabled(self) -> bool:
        return self.per_user > 0 or self.anonymous > 0

    async def check(self, who: str | None, client: str, route: str) -> None:
        limit = self.per_user if who else self.anonymous
        if limit <= 0:  # 0 switches the limit off
            return
        verdict = await self.counter.hit(f"{who or 'ip:' + client}|{route}", limit, time.time())
        if not verdict.allowed:
            raise RateLimited(verdict.retry_after)


class RateLimitMiddleware:
    """Counts each request against its caller's limit before it reaches a route.

    The caller is the verified token's subject; a missing or invalid token counts against the
    client address (so login and registration are limited per address)."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter, identify: Callable[[str], str | None]):
        self.app = app
        self.limiter = limiter
        self.identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.limiter.enabled
            or scope["path"] in ("/health", "/ready", "/metrics")
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        who = self.identify(headers.get(b"authorization", b"").decode("latin-1"))
        client = (scope.get("client") or ("unknown", 0))[0]
        # Raises RateLimited, which the request-context middleware around this one renders.
        await self.limiter.check(who, client, route_key(scope["method"], scope["path"]))
        await self.app(scope, receive, send)
