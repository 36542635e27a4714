"""Small factories for end-to-end tests: random users, signed-in clients, projects and tasks."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import embedded_settings

PASSWORD = "correct horse battery"


def random_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


@dataclass
class Actor:
    """A registered, signed-in user and the client they use."""

    client: TestClient
    id: str
    email: str
    tokens: dict[str, Any]
    # The position of the last write that made this actor (registration, role grant): reads that
    # must see the actor pass it on (``read``).
    position: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['accessToken']}"}

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.post(path, json=json, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.patch(path, json=json, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.put(path, json=json, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.client.delete(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def read(self, path: str, position: int, **kw: Any) -> Any:
        """A GET that waits until the read model has applied ``position`` (read-your-writes)."""
        return self.get(path, headers={"X-Consistency-Position": str(position)}, **kw)


def register(client: TestClient, email: str | None = None, name: str = "Test User") -> dict[str, Any]:
    response = client.post("/api/v1/users", json={"email": email or random_email(), "password": PASSWORD, "name": name})
    assert response.status_code == 201, response.text
    return response.json()


def login(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def signed_in(client: TestClient, name: str = "Test User") -> Actor:
    registered = register(client, name=name)
    user = registered["data"]
    return Actor(client, user["id"], user["email"], login(client, user["email"]), registered["meta"]["position"])


def create_project(actor: Actor, **fields: Any) -> dict[str, Any]:
    response = actor.post("/api/v1/projects", json={"name": "Apollo", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def add_member(owner: Actor, project_id: str, user: Actor, role: str) -> dict[str, Any]:
    response = owner.post(f"/api/v1/projects/{project_id}/members", json={"userId": user.id, "role": role})
    assert response.status_code == 201, response.text
    return response.json()


def create_task(actor: Actor, project_id: str, **fields: Any) -> dict[str, Any]:
    response = actor.post(f"/api/v1/projects/{project_id}/tasks", json={"title": "Write the tests", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is API.md's error envelope with this status and code, and no traceback."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["error"]["requestId"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body["error"]


# --- more factories and checks -------------------------------------------------------------------


def make_admin(system: Any, client: TestClient, actor: Actor | None = None) -> Actor:
    """A user with the system role ``admin``, signed in again so their token carries the role."""
    return with_role(system, client, "admin", actor or signed_in(client, name="Admin"))


def with_role(system: Any, client: TestClient, role: str, actor: Actor) -> Actor:
    """``actor`` granted a system role (``admin``, ``auditor``) and signed in again to carry it."""
    from commands.context import CommandContext

    granted = system.app.execute(system.app.grant_role(actor.email, role, CommandContext.system("test")))
    return Actor(client, actor.id, actor.email, login(client, actor.email), granted.position)


def add_comment(actor: Actor, task_id: str, body: str = "Looks good", **kw: Any) -> dict[str, Any]:
    response = actor.post(f"/api/v1/tasks/{task_id}/comments", json={"body": body}, **kw)
    assert response.status_code == 201, response.text
    return response.json()


def raw(client: TestClient, method: str, path: str, content: bytes | str | None = None,
        headers: dict[str, str] | None = None, actor: Actor | None = None) -> Any:
    """A request with an exact body and headers (for malformed input)."""
    all_headers = {**(actor.headers if actor else {}), **(headers or {})}
    return client.request(method, path, content=content, headers=all_headers)


def assert_no_traceback(response: Any) -> None:
    assert "Traceback" not in response.text
    assert 'File "' not in response.text


def field_names(error: dict[str, Any]) -> list[str]:
    """The ``field`` of each entry of an error's ``details``."""
    return [d["field"] for d in error.get("details", [])]


def is_iso_utc(value: Any) -> bool:
    from datetime import datetime

    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


# --- a faster ``settings`` fixture ----------------------------------------------------------------


@functools.cache
def signing_key_pem() -> str:
    """One RSA signing key for the whole session: generating one per test costs ~60 ms."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def settings(settings: Any) -> Any:
    """Extends conftest's ``settings`` (every backend it is parametrised over) where a test module
    imports it: the same system, signed with the session's key instead of a key made per test."""
    return settings.model_copy(update={"jwt_private_key": signing_key_pem()})


@contextmanager
def shared_settings(backend: str, data_dir: Path) -> Iterator[Any]:
    """Settings for a module-scoped system, on the backends conftest's ``settings`` covers."""
    if backend == "embedded":
        yield embedded_settings(data_dir, jwt_private_key=signing_key_pem())
        return
    from tests.services import fresh_postgres_database

    with fresh_postgres_database() as url:
        yield embedded_settings(data_dir, database_url=url, jwt_private_key=signing_key_pem())


BACKENDS = ["embedded", "postgres"]
