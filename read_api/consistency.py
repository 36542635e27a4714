"""Read-your-writes on request: wait (bounded) until the read models a route serves from have
applied the position the client's write returned, and report what they have applied."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Query, Request, Response
from starlette.concurrency import run_in_threadpool

from domain.errors import InvalidInput, TaskFlowError
from read_api.deps import ReadServices, get_services
from read_api.query import is_whole_number


class StaleRead(TaskFlowError):
    code = "STALE_READ"
    headers = {"Retry-After": "1"}


def _min_position(request: Request) -> int | None:
    raw = request.headers.get("x-consistency-position") or request.query_params.get("minPosition")
    if raw is None:
        return None
    if not is_whole_number(raw):
        raise InvalidInput.on("minPosition", "must be a non-negative integer position")
    return int(raw)


def _timeout_ms(request: Request, services: ReadServices) -> int:
    raw = request.query_params.get("maxWaitMs") or request.headers.get("x-consistency-timeout-ms")
    if raw is None:
        return services.wait_default_ms
    if not is_whole_number(raw):
        raise InvalidInput.on("maxWaitMs", "must be a whole number of milliseconds")
    return min(int(raw), services.wait_max_ms)


def consistent(*projections: str) -> Callable[..., Coroutine[Any, Any, int]]:
    """A dependency: waits for ``minPosition`` on the given read models, sets X-Projection-Position."""

    async def dependency(
        request: Request,
        response: Response,
        minPosition: int | None = Query(None, ge=0, description="Wait until the read model has applied this position (same as the X-Consistency-Position header)."),  # noqa: N803
    ) -> int:
        services = await get_services(request)
        wanted = _min_position(request)
        position = await _applied(services, projections)
        if wanted is not None and position < wanted:
            deadline = time.monotonic() + _timeout_ms(request, services) / 1000
            delay = 0.002
            while position < wanted:
                if time.monotonic() >= deadline:
                    raise StaleRead(
                        f"the read model has applied position {position}, not yet {wanted}; retry shortly"
                    )
                await asyncio.sleep(delay)
                # Checks every 10 ms at most: a projection usually lands within tens of ms, and a
                # coarser step would add its own wait to the read (one indexed read per check).
                delay = min(delay * 2, 0.01)
                position = await _applied(services, projections)
        response.headers["X-Projection-Position"] = str(position)
        return position

    return dependency


async def _applied(services: ReadServices, projections: tuple[str, ...]) -> int:
    # The positions are read from the stores (blocking queries): in the threadpool, so the event
    # loop serves other requests meanwhile; the wait between reads is on the loop.
    return await run_in_threadpool(lambda: min(services.position(name) for name in projections))
