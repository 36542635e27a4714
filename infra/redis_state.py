"""Operational state in Redis (production): token sessions and revocations, idempotency keys and
presence, shared by every API process. Keys expire on their own when what they guard has expired."""

from __future__ import annotations

import asyncio
import json
import time

import redis

from domain.errors import Conflict
from infra.redis_clients import AsyncRedis
from write_api.idempotency import StoredResponse

# Rotation must be one atomic step: two refreshes racing with the same token must not both win.
_ROTATE = """
local session = KEYS[1]
if redis.call('EXISTS', session) == 0 or redis.call('HGET', session, 'revoked') == '1' then
  return 'revoked'
end
if redis.call('HGET', session, 'jti') ~= ARGV[1] then
  return 'reused'
end
redis.call('HSET', session, 'jti', ARGV[2])
redis.call('EXPIREAT', session, ARGV[3])
return 'rotated'
"""
# Release a claimed idempotency key only while its request is still pending.
_RELEASE = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value)['status'] == cjson.null then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Presence: one sorted set per user, a member per live connection scored by when it expires, so a
# process that dies without saying goodbye stops counting once its heartbeats stop. The server's
# clock decides expiry: API processes on other machines may disagree about the time.
_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6"
_TOUCH = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local was_online = redis.call('ZCARD', KEYS[1]) > 0
local expires = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expires, ARGV[1])
redis.call('EXPIREAT', KEYS[1], math.ceil(expires), 'GT')
redis.call('EXPIREAT', KEYS[1], math.ceil(expires), 'NX')
if was_online then return 0 end
return 1
"""
_LEAVE = _NOW + """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if removed == 1 and redis.call('ZCARD', KEYS[1]) == 0 then return 1 end
return 0
"""
_ONLINE = _NOW + """
local online = {}
for i, key in ipairs(KEYS) do
  if redis.call('ZCOUNT', key, '(' .. now, '+inf') > 0 then table.insert(online, ARGV[i]) end
end
return online
"""


class RedisStateStore:
    """Blocking calls for everything but the revocation check, which every authenticated request
    makes from the event loop: that one goes through the asyncio client of the same server."""

    def __init__(self, client: redis.Redis, async_redis: AsyncRedis, *, prefix: str = "taskflow:"):
        self.redis = client  # must decode responses (decode_responses=True)
        self.async_redis = async_redis
        self.prefix = prefix
        self._rotate = self.redis.register_script(_ROTATE)
        self._release = self.redis.register_script(_RELEASE)
        self._touch = self.redis.register_script(_TOUCH)
        self._leave = self.redis.register_script(_LEAVE)
        self._online = self.redis.register_script(_ONLINE)

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # --- tokens ------------------------------------------------------------------------------
    def start_session(self, sid: str, user_id: str, jti: str, expires_at: int) -> None:
        session, user_sessions = self._key("session", sid), self._key("user-sessions", user_id)
        with self.redis.pipeline() as pipe:
            pipe.hset(session, mapping={"user": user_id, "jti": jti, "revoked": "0"})
            pipe.expireat(session, expires_at)
            pipe.sadd(user_sessions, sid)
            pipe.expireat(user_sessions, expires_at, gt=True)
            pipe.expireat(user_sessions, expires_at, nx=True)
            pipe.execute()

    def rotate(self, sid: str, old_jti: str, new_jti: str, expires_at: int) -> str:
        return str(self._rotate(keys=[self._key("session", sid)], args=[old_jti, new_jti, expires_at]))

    def revoke_session(self, sid: str) -> None:
        session = self._key("session", sid)
        if self.redis.exists(session):
            self.redis.hset(session, "revoked", "1")

    def revoke_user_sessions(self, user_id: str) -> None:
        for sid in self.redis.smembers(self._key("user-sessions", user_id)):
            self.revoke_session(sid)

    def revoke_access(self, jti: str, expires_at: int) -> None:
        self.redis.set(self._key("revoked-access", jti), "1", exat=max(expires_at, int(time.time()) + 1))

    async def is_revoked(self, jti: str, sid: str) -> bool:
        # Both queued before either is awaited, so they travel in the same pipeline.
        access_revoked, session_revoked = await asyncio.gather(
            self.async_redis.send("EXISTS", self._key("revoked-access", jti)),
            self.async_redis.send("HGET", self._key("session", sid), "revoked"),
        )
        # A session that has expired or never existed counts as revoked.
        return bool(access_revoked) or session_revoked != "0"

    # --- idempotency -------------------------------------------------------------------------
    def claim(self, scope: str, key: str, fingerprint: str, ttl_seconds: int) -> StoredResponse | None:
        name = self._key("idempotency", scope, key)
        pending = json.dumps({"fingerprint": fingerprint, "status": None})
        if self.redis.set(name, pending, nx=True, ex=ttl_seconds):
            return None
        stored = self.redis.get(name)
        if stored is None:  # expired between the two calls: claim again
            return self.claim(scope, key, fingerprint, ttl_seconds)
        entry = json.loads(stored)
        if entry["fingerprint"] != fingerprint:
            raise Conflict("this Idempotency-Key was already used for a different request")
        if entry["status"] is None:
            raise Conflict("a request with this Idempotency-Key is still in progress")
        return StoredResponse(status=entry["status"], body=entry["body"].encode("latin-1"), headers=entry["headers"])

    def complete(self, scope: str, key: str, response: StoredResponse) -> None:
        name = self._key("idempotency", scope, key)
        entry = self.redis.get(name)
        fingerprint = json.loads(entry)["fingerprint"] if entry else ""
        value = {"fingerprint": fingerprint, "status": response.status,
                 "body": response.body.decode("latin-1"), "headers": response.headers}
        self.redis.set(name, json.dumps(value), keepttl=True, xx=True)

    def release(self, scope: str, key: str) -> None:
        self._release(keys=[self._key("idempotency", scope, key)])

    # --- presence ----------------------------------------------------------------------------
    def touch_presence(self, user_id: str, connection_id: str, ttl_seconds: float) -> bool:
        """Mark a connection live for ``ttl_seconds`` more; True when its user just came online."""
        return bool(self._touch(keys=[self._key("presence", user_id)], args=[connection_id, ttl_seconds]))

    def leave_presence(self, user_id: str, connection_id: str) -> bool:
        """End a connection; True when its user has no live connection left (went offline)."""
        return bool(self._leave(keys=[self._key("presence", user_id)], args=[connection_id]))

    def online(self, user_ids: list[str]) -> set[str]:
        if not user_ids:
            return set()
        return set(self._online(keys=[self._key("presence", u) for u in user_ids], args=list(user_ids)))

    def ping(self) -> None:
        self.redis.ping()

    def close(self) -> None:
        self.redis.close()
