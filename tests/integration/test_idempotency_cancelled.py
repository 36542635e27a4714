"""An Idempotency-Key request cancelled while it runs (its client gone, the server shutting down
under it) still records the command's outcome, on every state backend: a retry gets the first
response again, and the command has run once. Without that, the key would stay held "in
progress" for a day, or, released, let the retry run the command a second time."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fastapi import Request, Response

from domain.errors import Conflict
from tests.integration.test_state_store import state  # noqa: F401  (the backend fixture)
from write_api.idempotency import finish_in_flight, run_idempotently


def request_with_key(key: str) -> Request:
    return Request({
        "type": "http", "method": "POST", "scheme": "http", "server": ("test", 80), "path": "/api/v1/users",
        "root_path": "", "query_string": b"", "headers": [(b"idempotency-key", key.encode())],
    })


class Command:
    """What a route's produce does, counted, and held until ``finish`` is set."""

    def __init__(self) -> None:
        self.runs = 0
        self.started, self.finish = asyncio.Event(), asyncio.Event()

    async def __call__(self) -> Response:
        self.runs += 1
        self.started.set()
        await self.finish.wait()
        return Response(b'{"data": "created"}', status_code=201, headers={"ETag": '"1"'})


async def retried(store, command: Command) -> Response:
    for _ in range(500):
        try:
            return await run_idempotently(request_with_key("k1"), None, store, None, command)
        except Conflict:  # still "in progress" for a moment
            await asyncio.sleep(0.01)
    raise AssertionError("the key stayed in progress")


def assert_replayed(retry: Response, command: Command) -> None:
    assert command.runs == 1
    assert retry.status_code == 201 and retry.body == b'{"data": "created"}'
    assert retry.headers["Idempotent-Replayed"] == "true" and retry.headers["etag"] == '"1"'


def test_a_request_cancelled_while_its_command_runs_still_records_the_outcome(state):  # noqa: F811
    async def scenario():
        command = Command()
        first = asyncio.ensure_future(run_idempotently(request_with_key("k1"), None, state, None, command))
        await command.started.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        command.finish.set()  # the command goes on to its end and its response is stored
        return await retried(state, command), command

    assert_replayed(*asyncio.run(scenario()))


def test_a_request_cancelled_while_claiming_its_key_still_runs_and_records(state):  # noqa: F811
    claiming, go_on = threading.Event(), threading.Event()
    claim = state.claim

    def slow_claim(*args):
        claiming.set()
        go_on.wait(10)
        return claim(*args)

    async def scenario():
        command = Command()
        command.finish.set()
        state.claim = slow_claim
        first = asyncio.ensure_future(run_idempotently(request_with_key("k1"), None, state, None, command))
        await asyncio.to_thread(claiming.wait, 10)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        state.claim = claim
        go_on.set()
        return await retried(state, command), command

    assert_replayed(*asyncio.run(scenario()))


def test_shutdown_waits_for_a_cancelled_request_to_record_its_outcome(state):  # noqa: F811
    async def scenario():
        command = Command()
        first = asyncio.ensure_future(run_idempotently(request_with_key("k1"), None, state, None, command))
        await command.started.wait()
        first.cancel()  # the server's graceful timeout ran out
        asyncio.get_running_loop().call_later(0.2, command.finish.set)
        await finish_in_flight(timeout=10)  # the API's shutdown, before its clients close
        # Recorded already: the very next request replays it.
        return await run_idempotently(request_with_key("k1"), None, state, None, command), command

    assert_replayed(*asyncio.run(scenario()))
