"""RS256 signing keys: one signs, every key in the ring verifies (so tokens signed before a
rotation keep working until their key is retired), and all are published as a JWKS."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()


def _kid(private_key: rsa.RSAPrivateKey) -> str:
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode().rstrip("=")


def _load(pem: bytes) -> SigningKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the JWT signing key must be an RSA private key")
    return SigningKey(_kid(key), key)


# How often, at most, a ring loaded from a directory looks there again for a key it does not know.
RELOAD_INTERVAL_SECONDS = 1.0


class KeyRing:
    def __init__(self, keys: list[SigningKey], directory: Path | None = None):
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self.signing = keys[0]
        self._by_kid = {k.kid: k for k in keys}
        self._directory = directory
        self._looked_at = float("-inf")  # the first unknown kid looks at once

    def verification_key(self, kid: str | None) -> rsa.RSAPublicKey | None:
        key = self._by_kid.get(kid or "")
        if key is None and kid and self._directory is not None:
            key = self._reload().get(kid)
        return key.public_key if key else None

    def _reload(self) -> dict[str, SigningKey]:
        """A process started after ``taskflow keys rotate`` signs with the new key: the processes
        already running find it in the directory on their first token signed with it, instead of
        answering 401 until they restart. Keys already known are kept (and this one keeps signing
        with its own); an unknown kid looks at most once a second, so forged kids cost little."""
        now = time.monotonic()
        if now - self._looked_at >= RELOAD_INTERVAL_SECONDS:
            self._looked_at = now
            assert self._directory is not None
            found = {k.kid: k for k in _read_keys(self._directory)}
            self._by_kid = {**found, **self._by_kid}  # one assignment: readers see either dict whole
        return self._by_kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for key in self._by_kid.values():
            jwk = RSAAlgorithm.to_jwk(key.public_key, as_dict=True)
            keys.append({**jwk, "kid": key.kid, "alg": "RS256", "use": "sig"})
        return {"keys": keys}

    @classmethod
    def from_pem(cls, pem: bytes) -> KeyRing:
        return cls([_load(pem)])

    @classmethod
    def from_directory(cls, directory: Path) -> KeyRing:
        """All keys in ``directory``, newest signing; generates the first one if there is none.

        Every worker process of a server calls this at start-up on the same directory: the check
        for a key and the creation of the first one happen under an exclusive lock, so they all
        end up with the same single key. (Unlocked, two workers each generated a key and one
        knew only its own: it answered 401 "unknown key" to every token the other signed.)"""
        with _locked(directory):
            if not list(directory.glob("*.pem")):
                rotate(directory)
            return cls(_read_keys(directory), directory)


def _read_keys(directory: Path) -> list[SigningKey]:
    """Every key in ``directory``, newest first (file names start with a timestamp)."""
    return [_load(f.read_bytes()) for f in sorted(directory.glob("*.pem"), reverse=True)]


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the key directory, across processes (flock on a lock file there)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def rotate(directory: Path) -> str:
    """Add a new signing key to ``directory``; older keys stay to verify tokens they signed."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    kid = _kid(key)
    path = directory / f"{time.time_ns():020d}-{kid}.pem"
    # Written under another name and renamed into place: a process listing the directory never
    # reads a half-written key.
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.rename(partial, path)
    return kid
