"""Idempotency-Key on POST: the same key from the same user within 24 hours gets the first
response again, and the command is not executed a second time."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel

from domain.errors import InvalidInput
from domain.identity import Principal

KEY_TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255


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
    fingerprint = _fingerprint(request, payload)
    # The store is synchronous (Redis or SQLite): its calls run in the threadpool, off the loop.
    stored = await run_in_threadpool(store.claim, scope, key, fingerprint, KEY_TTL_SECONDS)
    if stored is not None:
        replay = Response(content=stored.body, status_code=stored.status, headers=stored.headers)
        replay.headers["Idempotent-Replayed"] = "true"
        return replay

    async def produce_and_record() -> Response:
        try:
            response = await produce()
        except Exception:
            await run_in_threadpool(store.release, scope, key)
            raise
        if response.status_code >= 500:
            await run_in_threadpool(store.release, scope, key)
        else:
            headers = {k: v for k, v in response.headers.items() if k.lower() in ("etag", "location", "content-type")}
            await run_in_threadpool(store.complete, scope, key,
                                    StoredResponse(response.status_code, bytes(response.body), headers))
        return response

    # Shielded: once the key is claimed, the command's outcome is recorded even if this request
    # is cancelled (the server shutting down), so a retry replays it instead of finding the key
    # held "in progress" until it expires, or running the command twice.
    return await asyncio.shield(produce_and_record())
