"""Processes of one deployment started together on a fresh data directory and database
(``--workers N``, or the write API, read API, relay and projector):

- they sign and verify with the same key: otherwise a token one worker issued is refused by
  another with 401 "unknown key", as the write benchmark saw (most of its requests answered 401
  when the two workers raced to create the key);
- they all start: creating the event store's tables side by side used to fail in one of them
  (a unique violation in pg_type from two concurrent CREATE TABLE IF NOT EXISTS)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, random_email
from tests.services import fresh_postgres_database, service_url

ROOT = Path(__file__).resolve().parents[2]

# Each process waits for the same instant, then loads (or creates) the key ring.
LOAD_AT = """
import json, sys, time
from pathlib import Path
from infra.keys import KeyRing
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
ring = KeyRing.from_directory(Path(sys.argv[1]))
print(json.dumps({"signing": ring.signing.kid, "known": sorted(k["kid"] for k in ring.jwks()["keys"])}))
"""


def test_processes_starting_together_on_an_empty_key_directory_share_one_signing_key(tmp_path):
    keys = tmp_path / "keys"
    start = time.time() + 3  # after every interpreter has started
    processes = [subprocess.Popen([sys.executable, "-c", LOAD_AT, str(keys), str(start)], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True) for _ in range(6)]
    rings = [json.loads(p.communicate(timeout=60)[0]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert len(list(keys.glob("*.pem"))) == 1
    assert {r["signing"] for r in rings} == {rings[0]["signing"]}
    assert all(r["known"] == [rings[0]["signing"]] for r in rings)


def test_a_token_from_one_write_api_worker_is_accepted_by_the_other(tmp_path):
    """``taskflow write-api --workers 2`` on PostgreSQL and Redis, first start on an empty data
    directory: every request with the login's token succeeds, whichever worker accepts it (each
    request opens a new connection, so both workers serve some)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with fresh_postgres_database() as url:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TASKFLOW_DATA_DIR": str(tmp_path / "data"),
               "DATABASE_URL": url, "REDIS_URL": service_url("REDIS_URL"), "REDIS_PREFIX": f"test-{uuid.uuid4().hex[:12]}:",
               "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "64", "RATE_LIMIT_PER_MINUTE": "0",
               "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0"}
        for name in ("ELASTICSEARCH_URL", "KAFKA_BOOTSTRAP_SERVERS"):
            env.pop(name, None)
        log = tmp_path / "write-api.log"
        process = subprocess.Popen([sys.executable, "-m", "infra.cli", "write-api", "--port", str(port), "--workers", "2"],
                                   cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("write-api did not start: " + log.read_text())
                time.sleep(0.1)
            email = random_email()
            assert httpx.post(f"{base}/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Ada"}).status_code == 201
            login = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
            auth = {"Authorization": f"Bearer {login['data']['accessToken']}", "Connection": "close"}
            statuses = [httpx.post(f"{base}/api/v1/projects", json={"name": f"P{i}"}, headers=auth).status_code
                        for i in range(40)]
            assert statuses == [201] * 40
        finally:
            process.terminate()
            process.wait(timeout=15)


# Each process waits for the same instant, then opens the event store (creating its tables).
OPEN_STORE_AT = """
import sys, time
from infra.composition import event_store_env
from infra.settings import Settings
from eventsourcing.application import Application
settings = Settings(DATABASE_URL=sys.argv[1], REDIS_URL=None, ELASTICSEARCH_URL=None, KAFKA_BOOTSTRAP_SERVERS=None)
env = {**event_store_env(settings), "CREATE_TABLE": "y"}
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
Application(env=env).close()
"""


def test_processes_starting_together_on_an_empty_database_all_create_the_event_store(tmp_path):
    with fresh_postgres_database() as url:
        start = time.time() + 4
        processes = [subprocess.Popen([sys.executable, "-c", OPEN_STORE_AT, url, str(start)], cwd=ROOT,
                                      env={**os.environ, "PYTHONPATH": str(ROOT), "TASKFLOW_DATA_DIR": str(tmp_path)},
                                      stderr=subprocess.PIPE, text=True) for _ in range(6)]
        errors = [p.communicate(timeout=60)[1] for p in processes]
        assert [p.returncode for p in processes] == [0] * 6, "\n".join(errors)
