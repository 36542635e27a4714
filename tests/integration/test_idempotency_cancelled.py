"""An Idempotency-Key request cancelled while its command runs (the server shutting down under it)
still records the command's outcome, on every state backend: a retry gets the first response
again, and the command has run once. Without that, the key would stay held "in progress" for a
day, or, released, let the retry run the command a second time."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import Request, Response

from domain.errors import Conflict
from tests.integration.test_state_store import state  # noqa: F401  (the backend fixture)
from write_api.idempotency import run_idempotently


def request_with_key(key: str) -> Request:
    return Request({
        "type": "http", "method": "POST", "scheme": "http", "server": ("test", 80), "path": "/api/v1/users",
        "root_path": "", "query_string": b"", "headers": [(b"idempotency-key", key.encode())],
    })


def test_a_cancelled_request_still_records_its_outcome_for_the_retry(state):  # noqa: F811
    runs = []

    async def scenario() -> Response:
        started, finish = asyncio.Event(), asyncio.Event()

        async def produce() -> Response:
            runs.append("ran")
            started.set()
            await finish.wait()
            return Response(b'{"data": "created"}', status_code=201, headers={"ETag": '"1"'})

        first = asyncio.ensure_future(run_idempotently(request_with_key("k1"), None, state, None, produce))
        await started.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        # The command goes on to its end and its response is stored.
        finish.set()
        for _ in range(500):
            try:
                return await run_idempotently(request_with_key("k1"), None, state, None, produce)
            except Conflict:  # still "in progress" for a moment
                await asyncio.sleep(0.01)
        raise AssertionError("the key stayed in progress")

    retry = asyncio.run(scenario())
    assert runs == ["ran"]
    assert retry.status_code == 201 and retry.body == b'{"data": "created"}'
    assert retry.headers["Idempotent-Replayed"] == "true" and retry.headers["etag"] == '"1"'
