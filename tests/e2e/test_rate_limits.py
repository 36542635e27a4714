"""Rate limits per user and route (per address when anonymous): 429 RATE_LIMITED with
Retry-After, on the embedded counter and on Redis."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from infra.composition import build_http_app, build_system
from tests.e2e.helpers import assert_error, login, random_email, register, signed_in


@pytest.fixture
def limited_client(settings):
    limited = settings.model_copy(update={"rate_limit_per_minute": 5, "rate_limit_anonymous_per_minute": 3})
    system = build_system(limited)
    with TestClient(build_http_app(system), raise_server_exceptions=False) as client:
        yield client
    system.close()


def test_a_user_over_the_limit_of_a_route_gets_429_with_retry_after(limited_client):
    user = register(limited_client)["data"]
    tokens = login(limited_client, user["email"])
    auth = {"Authorization": f"Bearer {tokens['accessToken']}"}
    statuses = [limited_client.get("/api/v1/projects", headers=auth).status_code for _ in range(5)]
    assert statuses == [200] * 5
    refused = limited_client.get("/api/v1/projects", headers=auth)
    error = assert_error(refused, 429, "RATE_LIMITED")
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert "retry" in error["message"]


def test_the_limit_is_per_route_and_per_user(limited_client):
    alice = register(limited_client)["data"]
    bob = register(limited_client)["data"]
    alice_auth = {"Authorization": f"Bearer {login(limited_client, alice['email'])['accessToken']}"}
    bob_auth = {"Authorization": f"Bearer {login(limited_client, bob['email'])['accessToken']}"}
    for _ in range(5):
        limited_client.get("/api/v1/projects", headers=alice_auth)
    assert limited_client.get("/api/v1/projects", headers=alice_auth).status_code == 429
    # Another route, and another user on the same route, still have their own allowance.
    assert limited_client.get("/api/v1/auth/profile", headers=alice_auth).status_code == 200
    assert limited_client.get("/api/v1/projects", headers=bob_auth).status_code == 200


def test_requests_to_one_route_with_different_ids_share_a_limit(limited_client):
    user = register(limited_client)["data"]
    auth = {"Authorization": f"Bearer {login(limited_client, user['email'])['accessToken']}"}
    statuses = [limited_client.get(f"/api/v1/tasks/{uuid.uuid4()}", headers=auth).status_code for _ in range(6)]
    assert statuses[:5] == [404] * 5 and statuses[5] == 429


def test_anonymous_login_attempts_are_limited_per_address(limited_client):
    email = random_email()
    attempts = [
        limited_client.post("/api/v1/auth/login", json={"email": email, "password": "wrong password"}).status_code
        for _ in range(4)
    ]
    assert attempts == [401, 401, 401, 429]


def test_health_is_never_rate_limited(limited_client):
    assert all(limited_client.get("/health").status_code == 200 for _ in range(20))


def test_a_disabled_limit_never_refuses(client):
    alice = signed_in(client)
    assert all(alice.get("/api/v1/projects").status_code == 200 for _ in range(30))
