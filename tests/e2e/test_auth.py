"""Signing in, tokens (JWT RS256 with kid), refresh rotation, sign-out, profile and the JWKS."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.helpers import PASSWORD, Actor, assert_error, login, random_email, register, signed_in
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _sign(system: Any, claims: dict[str, Any], *, key: Any = None, kid: str | None = None) -> str:
    signing = system.tokens.keys.signing
    return jwt.encode(claims, key or signing.private_key, algorithm="RS256", headers={"kid": kid or signing.kid})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _profile(client: Any, token: str) -> Any:
    return client.get("/api/v1/auth/profile", headers={"Authorization": f"Bearer {token}"})


def _refresh(client: Any, refresh_token: str) -> Any:
    return client.post("/api/v1/auth/refresh", json={"refreshToken": refresh_token})


# --- login ---------------------------------------------------------------------------------------


def test_login_returns_a_bearer_token_pair_valid_for_fifteen_minutes(client):
    user = register(client)["data"]
    tokens = login(client, user["email"])
    assert tokens["tokenType"] == "Bearer"
    assert tokens["expiresIn"] == 900
    assert tokens["accessToken"] and tokens["refreshToken"]
    claims = _claims(tokens["accessToken"])
    assert {"sub", "email", "roles", "exp", "iat", "iss", "aud", "jti"} <= set(claims)
    assert claims["sub"] == user["id"]
    assert claims["email"] == user["email"]
    assert claims["roles"] == ["user"]
    assert claims["exp"] - claims["iat"] == 900
    header = jwt.get_unverified_header(tokens["accessToken"])
    assert header["alg"] == "RS256" and header["kid"]


def test_login_accepts_the_email_in_any_case(client):
    email = random_email()
    register(client, email=email)
    response = client.post("/api/v1/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert response.status_code == 200, response.text


def test_login_with_a_wrong_password_is_unauthorized(client):
    user = register(client)["data"]
    response = client.post("/api/v1/auth/login", json={"email": user["email"], "password": "not the password"})
    assert_error(response, 401, "UNAUTHORIZED")


def test_login_with_an_unknown_email_is_unauthorized_like_a_wrong_password(client):
    user = register(client)["data"]
    unknown = client.post("/api/v1/auth/login", json={"email": random_email(), "password": PASSWORD})
    wrong = client.post("/api/v1/auth/login", json={"email": user["email"], "password": "nope nope nope"})
    assert_error(unknown, 401, "UNAUTHORIZED")
    assert_error(wrong, 401, "UNAUTHORIZED")
    assert unknown.json()["error"]["message"] == wrong.json()["error"]["message"]


def test_login_with_a_missing_field_is_a_validation_error(client):
    error = assert_error(client.post("/api/v1/auth/login", json={"email": "a@example.com"}), 400, "VALIDATION_FAILED")
    assert "password" in [d["field"] for d in error["details"]]


# --- which tokens are accepted -------------------------------------------------------------------


def test_a_request_without_a_token_is_unauthorized_with_a_bearer_challenge(client):
    response = client.get("/api/v1/auth/profile")
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_non_bearer_authorization_header_is_unauthorized(client):
    ada = signed_in(client)
    response = client.get("/api/v1/auth/profile", headers={"Authorization": f"Basic {ada.tokens['accessToken']}"})
    assert_error(response, 401, "UNAUTHORIZED")


def test_an_expired_access_token_is_refused_with_token_expired(client, system):
    ada = signed_in(client)
    now = int(time.time())
    claims = {**_claims(ada.tokens["accessToken"]), "iat": now - 3600, "exp": now - 120}  # beyond the 30 s leeway
    response = _profile(client, _sign(system, claims))
    assert_error(response, 401, "TOKEN_EXPIRED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_within_the_clock_skew_leeway_is_still_accepted(client, system):
    ada = signed_in(client)
    now = int(time.time())
    claims = {**_claims(ada.tokens["accessToken"]), "exp": now - 5}
    assert _profile(client, _sign(system, claims)).status_code == 200


def test_a_token_with_a_tampered_signature_is_unauthorized(client):
    ada = signed_in(client)
    head, payload, signature = ada.tokens["accessToken"].split(".")
    middle = len(signature) // 2
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1:]
    assert_error(_profile(client, f"{head}.{payload}.{flipped}"), 401, "UNAUTHORIZED")


def test_a_token_with_a_tampered_payload_is_unauthorized(client):
    ada = signed_in(client)
    bob = signed_in(client)
    head, _, signature = ada.tokens["accessToken"].split(".")
    forged = {**_claims(ada.tokens["accessToken"]), "sub": bob.id, "roles": ["user", "admin"]}
    assert_error(_profile(client, f"{head}.{_b64(forged)}.{signature}"), 401, "UNAUTHORIZED")


def test_an_unsigned_alg_none_token_is_unauthorized(client, system):
    ada = signed_in(client)
    header = {"alg": "none", "typ": "JWT", "kid": system.tokens.keys.signing.kid}
    token = f"{_b64(header)}.{_b64(_claims(ada.tokens['accessToken']))}."
    assert_error(_profile(client, token), 401, "UNAUTHORIZED")


def test_a_token_signed_by_another_key_with_the_same_kid_is_unauthorized(client, system):
    ada = signed_in(client)
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = _sign(system, _claims(ada.tokens["accessToken"]), key=impostor)
    assert_error(_profile(client, token), 401, "UNAUTHORIZED")


def test_a_token_with_an_unknown_kid_is_unauthorized(client, system):
    ada = signed_in(client)
    token = _sign(system, _claims(ada.tokens["accessToken"]), kid="not-a-key-of-ours")
    assert_error(_profile(client, token), 401, "UNAUTHORIZED")


def test_a_token_for_another_audience_is_unauthorized(client, system):
    ada = signed_in(client)
    token = _sign(system, {**_claims(ada.tokens["accessToken"]), "aud": "some-other-api"})
    assert_error(_profile(client, token), 401, "UNAUTHORIZED")


def test_a_refresh_token_cannot_be_used_as_an_access_token(client):
    ada = signed_in(client)
    assert_error(_profile(client, ada.tokens["refreshToken"]), 401, "UNAUTHORIZED")


def test_an_access_token_cannot_be_used_to_refresh(client):
    ada = signed_in(client)
    assert_error(_refresh(client, ada.tokens["accessToken"]), 401, "UNAUTHORIZED")


def test_garbage_instead_of_a_token_is_unauthorized(client):
    for token in ("garbage", "a.b.c", "....", "ey.ey.ey"):
        assert_error(_profile(client, token), 401, "UNAUTHORIZED")


# --- refresh rotation ----------------------------------------------------------------------------


def test_refresh_issues_a_new_pair_that_works(client):
    ada = signed_in(client)
    response = _refresh(client, ada.tokens["refreshToken"])
    assert response.status_code == 200, response.text
    fresh = response.json()["data"]
    assert fresh["tokenType"] == "Bearer" and fresh["expiresIn"] == 900
    assert fresh["refreshToken"] != ada.tokens["refreshToken"]
    assert _profile(client, fresh["accessToken"]).status_code == 200
    # The new refresh token rotates again.
    again = _refresh(client, fresh["refreshToken"])
    assert again.status_code == 200, again.text


def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(client):
    ada = signed_in(client)
    first = ada.tokens
    second = _refresh(client, first["refreshToken"]).json()["data"]
    third = _refresh(client, second["refreshToken"]).json()["data"]
    assert _profile(client, third["accessToken"]).status_code == 200

    # The old refresh token comes back: it was stolen, so the family is revoked.
    assert_error(_refresh(client, first["refreshToken"]), 401, "UNAUTHORIZED")
    assert_error(_refresh(client, third["refreshToken"]), 401, "UNAUTHORIZED")
    assert_error(_profile(client, third["accessToken"]), 401, "UNAUTHORIZED")
    assert_error(_profile(client, first["accessToken"]), 401, "UNAUTHORIZED")


def test_reuse_in_one_session_leaves_other_sessions_of_the_user_alone(client):
    ada = signed_in(client)
    other_session = login(client, ada.email)
    second = _refresh(client, ada.tokens["refreshToken"]).json()["data"]
    assert _refresh(client, ada.tokens["refreshToken"]).status_code == 401
    assert _profile(client, second["accessToken"]).status_code == 401
    assert _profile(client, other_session["accessToken"]).status_code == 200
    assert _refresh(client, other_session["refreshToken"]).status_code == 200


def test_refresh_with_a_malformed_token_is_unauthorized(client):
    assert_error(_refresh(client, "not-a-jwt"), 401, "UNAUTHORIZED")


def test_refresh_without_a_token_is_a_validation_error(client):
    error = assert_error(client.post("/api/v1/auth/refresh", json={}), 400, "VALIDATION_FAILED")
    assert "refreshToken" in [d["field"] for d in error["details"]]


# --- logout and profile --------------------------------------------------------------------------


def test_logout_revokes_the_access_token_and_the_refresh_token(client):
    ada = signed_in(client)
    response = ada.post("/api/v1/auth/logout")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(ada.get("/api/v1/auth/profile"), 401, "UNAUTHORIZED")
    assert_error(_refresh(client, ada.tokens["refreshToken"]), 401, "UNAUTHORIZED")


def test_logout_ends_only_that_session(client):
    ada = signed_in(client)
    elsewhere = login(client, ada.email)
    assert ada.post("/api/v1/auth/logout").status_code == 204
    assert _profile(client, elsewhere["accessToken"]).status_code == 200


def test_logout_without_a_token_is_unauthorized(client):
    assert_error(client.post("/api/v1/auth/logout"), 401, "UNAUTHORIZED")


def test_profile_returns_the_signed_in_user_without_any_password(client):
    ada = signed_in(client, name="Ada Lovelace")
    response = ada.get("/api/v1/auth/profile")
    assert response.status_code == 200
    profile = response.json()["data"]
    assert profile["id"] == ada.id
    assert profile["email"] == ada.email
    assert profile["name"] == "Ada Lovelace"
    assert profile["active"] is True
    assert profile["roles"] == ["user"]
    assert "password" not in response.text.lower()


# --- public keys ---------------------------------------------------------------------------------


def test_jwks_publishes_the_key_that_verifies_access_tokens(client):
    ada = signed_in(client)
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    kid = jwt.get_unverified_header(ada.tokens["accessToken"])["kid"]
    jwk = next(k for k in keys if k["kid"] == kid)
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and jwk["use"] == "sig"
    assert "d" not in jwk and "p" not in jwk  # public parts only
    claims = jwt.decode(
        ada.tokens["accessToken"], jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="taskflow-api",
        issuer="taskflow",
    )
    assert claims["sub"] == ada.id


def test_jwks_needs_no_token(client):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json()["keys"]


# --- deactivation --------------------------------------------------------------------------------


def test_a_deactivated_user_cannot_log_in_and_their_tokens_stop_working(client):
    ada = signed_in(client)
    other_session = login(client, ada.email)
    assert ada.delete(f"/api/v1/users/{ada.id}").status_code == 200
    assert_error(client.post("/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD}), 401,
                 "UNAUTHORIZED")
    assert_error(ada.get("/api/v1/auth/profile"), 401, "UNAUTHORIZED")
    assert_error(_profile(client, other_session["accessToken"]), 401, "UNAUTHORIZED")
    assert_error(_refresh(client, other_session["refreshToken"]), 401, "UNAUTHORIZED")
    # Reads are refused as well, not only writes.
    assert_error(ada.get(f"/api/v1/users/{ada.id}"), 401, "UNAUTHORIZED")


def test_a_password_change_signs_the_user_out_everywhere_and_the_new_password_works(client):
    ada = signed_in(client)
    response = ada.put(f"/api/v1/users/{ada.id}", json={"password": "a brand new secret"})
    assert response.status_code == 200, response.text
    assert "password" not in response.text.lower()
    assert_error(ada.get("/api/v1/auth/profile"), 401, "UNAUTHORIZED")
    assert_error(_refresh(client, ada.tokens["refreshToken"]), 401, "UNAUTHORIZED")
    assert client.post("/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD}).status_code == 401
    fresh = Actor(client, ada.id, ada.email, login(client, ada.email, "a brand new secret"))
    assert fresh.get("/api/v1/auth/profile").status_code == 200
