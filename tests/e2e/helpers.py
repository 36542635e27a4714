"""Small factories for end-to-end tests: random users, signed-in clients, projects and tasks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

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
    user = register(client, name=name)["data"]
    return Actor(client, user["id"], user["email"], login(client, user["email"]))


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
    from commands.context import CommandContext

    actor = actor or signed_in(client, name="Admin")
    system.app.grant_role(actor.email, "admin", CommandContext.system("test"))
    return Actor(client, actor.id, actor.email, login(client, actor.email))


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
