"""Clients of the Redis server: blocking ones for most calls, and asyncio ones for what an API
asks Redis on every request from its event loop (the revocation check, the rate limit), so that no
request waits for a thread to do it."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import NoScriptError

# Every client decodes responses: the stores compare and parse strings.
CLIENT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5, "decode_responses": True}


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, **CLIENT_OPTIONS)


class AsyncRedis:
    """Commands from an event loop, pipelined: those queued in the same turn of the loop (requests
    that arrived together) travel together. Under load that is most of them, and a pipeline costs
    redis-py's client about what one command does, so each request's Redis calls cost a fraction
    of a round trip each (see docs/benchmarks.md, "The write path without threads").

    One client per event loop: an asyncio client's connections belong to the loop that opened
    them. An API process has one loop; a test client runs each app in a loop of its own."""

    def __init__(self, url: str):
        self.url = url
        self._clients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}
        self._batches: dict[asyncio.AbstractEventLoop, list[tuple[tuple[Any, ...], asyncio.Future[Any]]]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._shas: dict[str, str] = {}

    def client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for gone in [other for other in list(self._clients) if other.is_closed()]:
                self._clients.pop(gone, None)
                self._batches.pop(gone, None)
            client = self._clients[loop] = redis.asyncio.Redis.from_url(self.url, **CLIENT_OPTIONS)
        return client

    def send(self, *command: Any) -> asyncio.Future[Any]:
        """Queue one command and return the future of its reply (or of its error: one command's
        error is its caller's alone). The batch is sent when the loop's current turn ends."""
        loop = asyncio.get_running_loop()
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = []
            loop.call_soon(self._send_batch, loop)
        future = loop.create_future()
        batch.append((command, future))
        return future

    def _send_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._batches.pop(loop)
        task = loop.create_task(self._round_trip(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _round_trip(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            async with self.client().pipeline(transaction=False) as pipe:
                for command, _ in batch:
                    pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as error:  # the connection failed: every caller gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:  # cancelled (the loop is shutting down): so are the callers
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), reply in zip(batch, replies):
            if not future.done():
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        for _, future in batch[len(replies):]:  # never expected: still, no caller waits forever
            if not future.done():
                future.set_exception(redis.ResponseError("no reply to this command in its pipeline"))

    async def run_script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by EVALSHA (loading it first if the server does not have it)."""
        sha = self._shas.get(source)
        if sha is None:
            sha = self._shas[source] = hashlib.sha1(source.encode()).hexdigest()
        try:
            return await self.send("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.client().script_load(source)
            return await self.send("EVALSHA", sha, len(keys), *keys, *args)

    async def aclose(self) -> None:
        """Close the running loop's client (the API's shutdown calls this)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
