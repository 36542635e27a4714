"""Operational state of the embedded default in SQLite: token sessions and revocations,
idempotency keys and presence. Kept on disk (not in memory) so a restart does not bring a revoked token back."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path

from domain.errors import Conflict
from write_api.idempotency import StoredResponse

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessions (sid TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
    " current_jti TEXT NOT NULL, expires_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id)",
    "CREATE TABLE IF NOT EXISTS revoked_access (jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS idempotency (scope TEXT NOT NULL, key TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL, created_at REAL NOT NULL, status INTEGER, body BLOB, headers TEXT,"
    " PRIMARY KEY (scope, key))",
    # One row per live connection; a connection whose heartbeats stopped expires on its own.
    "CREATE TABLE IF NOT EXISTS presence (user_id TEXT NOT NULL, connection_id TEXT NOT NULL,"
    " expires_at REAL NOT NULL, PRIMARY KEY (user_id, connection_id))",
)


class SQLiteStateStore:
    def __init__(self, path: Path | str):
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.Lock()
        for statement in _SCHEMA:
            self._conn.execute(statement)

    def _run(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # --- tokens ------------------------------------------------------------------------------
    def start_session(self, sid: str, user_id: str, jti: str, expires_at: int) -> None:
        self._run("INSERT INTO sessions (sid, user_id, current_jti, expires_at) VALUES (?, ?, ?, ?)",
                  (sid, user_id, jti, expires_at))
        self._purge()

    def rotate(self, sid: str, old_jti: str, new_jti: str, expires_at: int) -> str:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT current_jti, revoked FROM sessions WHERE sid = ?", (sid,)).fetchone()
                if row is None or row[1]:
                    outcome = "revoked"
                elif row[0] != old_jti:
                    outcome = "reused"
                else:
                    self._conn.execute("UPDATE sessions SET current_jti = ?, expires_at = ? WHERE sid = ?",
                                       (new_jti, expires_at, sid))
                    outcome = "rotated"
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return outcome

    def revoke_session(self, sid: str) -> None:
        self._run("UPDATE sessions SET revoked = 1 WHERE sid = ?", (sid,))

    def revoke_user_sessions(self, user_id: str) -> None:
        self._run("UPDATE sessions SET revoked = 1 WHERE user_id = ?", (user_id,))

    def revoke_access(self, jti: str, expires_at: int) -> None:
        self._run("INSERT OR IGNORE INTO revoked_access (jti, expires_at) VALUES (?, ?)", (jti, expires_at))

    async def is_revoked(self, jti: str, sid: str) -> bool:
        # A thread, not the event loop: the query may wait for the store's lock.
        return await asyncio.to_thread(self._is_revoked, jti, sid)

    def _is_revoked(self, jti: str, sid: str) -> bool:
        rows = self._run(
            "SELECT EXISTS (SELECT 1 FROM revoked_access WHERE jti = ?)"
            " OR NOT EXISTS (SELECT 1 FROM sessions WHERE sid = ? AND revoked = 0)",
            (jti, sid),
        )
        return bool(rows[0][0])

    def _purge(self) -> None:
        # Expired entries can go: an expired token fails on its own ``exp``.
        now = int(time.time()) - 60
        self._run("DELETE FROM revoked_access WHERE expires_at < ?", (now,))
        self._run("DELETE FROM sessions WHERE expires_at < ?", (now,))

    # --- idempotency -------------------------------------------------------------------------
    def claim(self, scope: str, key: str, fingerprint: str, ttl_seconds: int) -> StoredResponse | None:
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM idempotency WHERE created_at < ?", (now - ttl_seconds,))
                row = self._conn.execute(
                    "SELECT fingerprint, status, body, headers FROM idempotency WHERE scope = ? AND key = ?",
                    (scope, key),
                ).fetchone()
                if row is None:
                    self._conn.execute(
                        "INSERT INTO idempotency (scope, key, fingerprint, created_at) VALUES (?, ?, ?, ?)",
                        (scope, key, fingerprint, now),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        if row is None:
            return None
        if row[0] != fingerprint:
            raise Conflict("this Idempotency-Key was already used for a different request")
        if row[1] is None:
            raise Conflict("a request with this Idempotency-Key is still in progress")


        return StoredResponse(status=row[1], body=row[2], headers=json.loads(row[3]))

    def complete(self, scope: str, key: str, response: StoredResponse) -> None:


        self._run("UPDATE idempotency SET status = ?, body = ?, headers = ? WHERE scope = ? AND key = ?",
                  (response.status, response.body, json.dumps(response.headers), scope, key))

    def release(self, scope: str, key: str) -> None:
        self._run("DELETE FROM idempotency WHERE scope = ? AND key = ? AND status IS NULL", (scope, key))

    # --- presence ----------------------------------------------------------------------------
    def touch_presence(self, user_id: str, connection_id: str, ttl_seconds: float) -> bool:
        """Mark a connection live for ``ttl_seconds`` more; True when its user just came online."""
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM presence WHERE expires_at <= ?", (now,))
                was_online = self._conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM presence WHERE user_id = ?)", (user_id,)
                ).fetchone()[0]
                self._conn.execute(
                    "INSERT INTO presence (user_id, connection_id, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (user_id, connection_id) DO UPDATE SET expires_at = excluded.expires_at",
                    (user_id, connection_id, now + ttl_seconds),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return not was_online

    def leave_presence(self, user_id: str, connection_id: str) -> bool:
        """End a connection; True when its user has no live connection left (went offline)."""
        now = time.time()
        with self._lock:
            removed = self._conn.execute(
                "DELETE FROM presence WHERE user_id = ? AND connection_id = ? AND expires_at > ?",
                (user_id, connection_id, now),
            ).rowcount
            left = self._conn.execute(
                "SELECT EXISTS (SELECT 1 FROM presence WHERE user_id = ? AND expires_at > ?)", (user_id, now)
            ).fetchone()[0]
        return bool(removed) and not left

    def online(self, user_ids: list[str]) -> set[str]:
        if not user_ids:
            return set()
        marks = ", ".join("?" * len(user_ids))
        rows = self._run(
            f"SELECT DISTINCT user_id FROM presence WHERE expires_at > ? AND user_id IN ({marks})",
            (time.time(), *user_ids),
        )
        return {r[0] for r in rows}

    def ping(self) -> None:
        self._run("SELECT 1")

    def close(self) -> None:
        self._conn.close()
