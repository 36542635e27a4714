"""The asyncio Redis client the APIs use on every request (infra/redis_clients.py): commands
queued together travel in one pipeline, yet each caller gets its own reply or its own error; an
unreachable server fails every waiting caller at once; a script the server lost is loaded again."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
import redis

from infra.redis_clients import AsyncRedis
from tests.services import service_url


async def closing(client: AsyncRedis, work):
    try:
        return await work
    finally:
        await client.aclose()


def test_commands_sent_together_each_get_their_own_reply_and_only_theirs_fails():
    client = AsyncRedis(service_url("REDIS_URL"))
    counter, a_hash = f"test-{uuid.uuid4().hex}:n", f"test-{uuid.uuid4().hex}:h"

    async def scenario():
        await client.send("HSET", a_hash, "field", "x")
        futures = [client.send("INCR", counter) for _ in range(25)]
        wrong = client.send("INCR", a_hash)  # WRONGTYPE: an error for this caller only
        futures += [client.send("INCR", counter) for _ in range(25)]
        replies = await asyncio.gather(*futures)
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await wrong
        await client.send("DEL", counter, a_hash)
        return replies

    assert asyncio.run(closing(client, scenario())) == list(range(1, 51))


def test_every_caller_waiting_on_an_unreachable_server_gets_a_connection_error():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = AsyncRedis(f"redis://127.0.0.1:{port}/0")

    async def scenario():
        outcomes = await asyncio.gather(*[client.send("GET", f"k{i}") for i in range(5)], return_exceptions=True)
        return outcomes

    outcomes = asyncio.run(asyncio.wait_for(closing(client, scenario()), 30))
    assert all(isinstance(o, redis.ConnectionError) for o in outcomes), outcomes


def test_a_script_the_server_forgot_is_loaded_again():
    client = AsyncRedis(service_url("REDIS_URL"))
    script = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
    key = f"test-{uuid.uuid4().hex}:s"

    async def scenario():
        first = await client.run_script(script, [key], [2])
        await client.send("SCRIPT", "FLUSH")  # as after a restart
        second = await client.run_script(script, [key], [3])
        await client.send("DEL", key)
        return first, second

    assert asyncio.run(closing(client, scenario())) == (2, 5)
