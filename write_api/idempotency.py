"""Idempotency-Key on POST: the same key from the same user within 24 hours gets the first
response again, and the command is not executed a second time."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from domain.errors import InvalidInput
from domain.identity import Principal

KEY_TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255
log = logging.getLogger("taskflow.idempotency")
# Requests still claiming, running or recording (each a task of its event loop), so that the
# API's shutdown can let them finish.
_in_flight: set[asyncio.Task[Response]] = set()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: dict[str, str]


class IdempotencyStore(Protocol):
    def claim(self, scope: str, key: str, fingerprint: str, ttl_seconds: int) -> StoredResponse | None:
        """None: the caller runs the command, then calls complete() or release().

        A stored response: replay it. Raises Conflict while another request holds the key, or
        when the key was used for a different request.
        """

    def complete(self, scope: str, key: str, response: StoredResponse) -> None: ...

    def release(self, scope: str, key: str) -> None: ...


def _fingerprint(request: Request, payload: BaseModel | None) -> str:
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode())
    if payload is not None:
        digest.update(payload.model_dump_json().encode())
    return digest.hexdigest()


async def run_idempotently(
    request: Request,
    principal: Principal | None,
    store: IdempotencyStore,
    payload: BaseModel | None,
    produce: Callable[[], Awaitable[Response]],
) -> Response:
    key = request.headers.get("idempotency-key")
    if key is None:
        return await produce()
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput.on("Idempotency-Key", f"must be 1-{MAX_KEY_LENGTH} characters")
    # Anonymous requests (registration) are scoped by the key alone.
    scope = str(principal.user_id) if principal else "anonymous"
    task = asyncio.ensure_future(_claim_run_record(store, scope, key, _fingerprint(request, payload), produce))
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)
    # Shielded: from the claim on, the command runs and its outcome is recorded even if this
    # request is cancelled (a client gone, a server shutting down), so a retry replays it instead
    # of finding the key held "in progress" until it expires, or running the command twice.
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_log_unseen_failure)  # nobody else will see how it ended
        raise


async def _claim_run_record(store: IdempotencyStore, scope: str, key: str, fingerprint: str,
                            produce: Callable[[], Awaitable[Response]]) -> Response:
    # The store is synchronous (Redis or SQLite): its calls run in the threadpool, off the loop.
    stored = await run_in_threadpool(store.claim, scope, key, fingerprint, KEY_TTL_SECONDS)
    if stored is not None:
        replay = Response(content=stored.body, status_code=stored.status, headers=stored.headers)
        replay.headers["Idempotent-Replayed"] = "true"
        return replay
    try:
        response = await produce()
    except Exception:
        await run_in_threadpool(store.release, scope, key)
        raise
    except BaseException:
        # Cancelled itself: the event loop is being torn down before finish_in_flight let it
        # end. Whether the command ran is unknown here, so the key stays held (a release could
        # let a retry run it twice) until it expires.
        log.error("idempotent request stopped before its outcome was recorded; its key stays held until it expires",
                  extra={"idempotencyScope": scope, "idempotencyKey": key})
        raise
    if response.status_code >= 500:
        await run_in_threadpool(store.release, scope, key)
    else:
        headers = {k: v for k, v in response.headers.items() if k.lower() in ("etag", "location", "content-type")}
        await run_in_threadpool(store.complete, scope, key,
                                StoredResponse(response.status_code, bytes(response.body), headers))
    return response


def _log_unseen_failure(task: asyncio.Task[Response]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("idempotent request failed after its client went away", exc_info=task.exception())


async def finish_in_flight(timeout: float) -> None:
    """Wait, at most ``timeout`` seconds, for this loop's idempotent requests to record their
    outcome: the API's shutdown calls this before it closes the clients they need."""
    loop = asyncio.get_running_loop()
    mine = [task for task in _in_flight if task.get_loop() is loop]
    if mine:
        await asyncio.wait(mine, timeout=timeout)
