"""The operational-state contract (token sessions, revocations, idempotency keys), run against
every backend: SQLite (embedded) and Redis (real server)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from domain.errors import Conflict
from infra.redis_clients import AsyncRedis, connect
from infra.redis_state import RedisStateStore
from infra.sqlite_state import SQLiteStateStore
from tests.services import service_url
from write_api.idempotency import StoredResponse


@pytest.fixture(params=["sqlite", "redis"])
def state(request, tmp_path):
    if request.param == "sqlite":
        store = SQLiteStateStore(tmp_path / "state.db")
    else:
        url = service_url("REDIS_URL")
        store = RedisStateStore(connect(url), AsyncRedis(url), prefix=f"test-{uuid.uuid4().hex}:")
    yield store
    store.close()


def revoked(state, jti: str, sid: str) -> bool:
    """The check an API makes on each request, from an event loop."""

    async def check() -> bool:
        try:
            return await state.is_revoked(jti, sid)
        finally:
            if isinstance(state, RedisStateStore):
                await state.async_redis.aclose()

    return asyncio.run(check())


def future(seconds: int = 3600) -> int:
    return int(time.time()) + seconds


def test_a_new_session_is_not_revoked_and_rotates_once_per_token(state):
    state.start_session("s1", "u1", "j1", future())
    assert not revoked(state, "access-1", "s1")
    assert state.rotate("s1", "j1", "j2", future()) == "rotated"
    assert state.rotate("s1", "j1", "j3", future()) == "reused"
    assert state.rotate("s1", "j2", "j3", future()) == "rotated"


def test_a_revoked_session_refuses_rotation_and_counts_as_revoked(state):
    state.start_session("s1", "u1", "j1", future())
    state.revoke_session("s1")
    assert revoked(state, "access-1", "s1")
    assert state.rotate("s1", "j1", "j2", future()) == "revoked"


def test_an_unknown_session_counts_as_revoked(state):
    assert revoked(state, "access-1", "never-started")
    assert state.rotate("never-started", "j1", "j2", future()) == "revoked"


def test_revoking_a_user_ends_all_their_sessions_and_only_theirs(state):
    state.start_session("a1", "alice", "j1", future())
    state.start_session("a2", "alice", "j2", future())
    state.start_session("b1", "bob", "j3", future())
    state.revoke_user_sessions("alice")
    assert revoked(state, "x", "a1") and revoked(state, "x", "a2")
    assert not revoked(state, "x", "b1")


def test_a_revoked_access_token_stays_revoked_while_its_session_lives(state):
    state.start_session("s1", "u1", "j1", future())
    state.revoke_access("access-1", future())
    assert revoked(state, "access-1", "s1")
    assert not revoked(state, "access-2", "s1")


def test_an_idempotency_key_replays_the_stored_response(state):
    assert state.claim("u1", "key", "fp", 3600) is None
    stored = StoredResponse(201, b'{"data": {"id": "x"}}', {"etag": '"1"'})
    state.complete("u1", "key", stored)
    assert state.claim("u1", "key", "fp", 3600) == stored
    # Keys are per user.
    assert state.claim("u2", "key", "fp", 3600) is None


def test_an_idempotency_key_in_flight_or_reused_for_another_request_conflicts(state):
    assert state.claim("u1", "key", "fp", 3600) is None
    with pytest.raises(Conflict):
        state.claim("u1", "key", "fp", 3600)
    state.complete("u1", "key", StoredResponse(200, b"{}", {}))
    with pytest.raises(Conflict):
        state.claim("u1", "key", "another body", 3600)


def test_a_released_key_can_be_claimed_again_but_a_completed_one_is_not_released(state):
    assert state.claim("u1", "key", "fp", 3600) is None
    state.release("u1", "key")
    assert state.claim("u1", "key", "fp", 3600) is None
    state.complete("u1", "key", StoredResponse(200, b"{}", {}))
    state.release("u1", "key")
    assert state.claim("u1", "key", "fp", 3600) is not None


def test_an_idempotency_key_expires_after_its_ttl(state):
    assert state.claim("u1", "key", "fp", 1) is None
    state.complete("u1", "key", StoredResponse(200, b"{}", {}))
    time.sleep(2.1)
    assert state.claim("u1", "key", "fp", 1) is None


def test_a_user_is_online_while_any_connection_lives_and_offline_after_the_last_leaves(state):
    assert state.touch_presence("alice", "tab-1", 60) is True  # came online
    assert state.touch_presence("alice", "tab-2", 60) is False  # already online
    assert state.touch_presence("alice", "tab-1", 60) is False  # a heartbeat
    assert state.online(["alice", "bob"]) == {"alice"}
    assert state.leave_presence("alice", "tab-1") is False  # tab-2 still open
    assert state.online(["alice"]) == {"alice"}
    assert state.leave_presence("alice", "tab-2") is True  # went offline
    assert state.online(["alice", "bob"]) == set()
    assert state.leave_presence("alice", "tab-2") is False  # leaving twice says nothing new


def test_a_connection_whose_heartbeats_stop_expires_on_its_own(state):
    state.touch_presence("alice", "crashed-process", 1)
    state.touch_presence("bob", "live", 60)
    assert state.online(["alice", "bob"]) == {"alice", "bob"}
    time.sleep(1.3)
    assert state.online(["alice", "bob"]) == {"bob"}
    # Coming back after expiry is coming online again.
    assert state.touch_presence("alice", "new-tab", 60) is True
