"""Signing keys on disk, as `taskflow keys rotate` and several server processes share them."""

from __future__ import annotations

import jwt

from infra import keys
from infra.keys import KeyRing, rotate


def _token(ring: KeyRing) -> str:
    return jwt.encode({"sub": "someone"}, ring.signing.private_key, algorithm="RS256",
                      headers={"kid": ring.signing.kid})


def _verifies(ring: KeyRing, token: str) -> bool:
    public = ring.verification_key(jwt.get_unverified_header(token)["kid"])
    if public is None:
        return False
    return jwt.decode(token, public, algorithms=["RS256"])["sub"] == "someone"


def test_after_a_rotation_new_processes_sign_with_the_new_key_and_running_ones_verify_it(tmp_path):
    running = KeyRing.from_directory(tmp_path)  # a process started before the rotation
    old_token = _token(running)
    new_kid = rotate(tmp_path)
    started_later = KeyRing.from_directory(tmp_path)
    assert started_later.signing.kid == new_kid
    # Tokens signed before the rotation keep verifying everywhere...
    assert _verifies(started_later, old_token)
    # ...and the running process accepts the new key's tokens without a restart.
    assert _verifies(running, _token(started_later))
    assert new_kid in {k["kid"] for k in running.jwks()["keys"]}
    assert running.signing.kid != new_kid  # it keeps signing with the key it started with


def test_unknown_key_ids_look_at_the_directory_at_most_once_a_second(tmp_path, monkeypatch):
    ring = KeyRing.from_directory(tmp_path)
    assert ring.verification_key("forged-kid") is None
    other = KeyRing.from_directory(tmp_path)
    rotate(tmp_path)
    fresh = KeyRing.from_directory(tmp_path)
    # Within the interval a second unknown kid does not read the directory again.
    monkeypatch.setattr(keys, "RELOAD_INTERVAL_SECONDS", 3600)
    assert ring.verification_key(fresh.signing.kid) is None
    monkeypatch.setattr(keys, "RELOAD_INTERVAL_SECONDS", 0)
    assert ring.verification_key(fresh.signing.kid) is not None
    assert other.signing.kid == ring.signing.kid
