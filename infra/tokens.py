"""Access and refresh tokens (JWT, RS256) and their revocation.

Access tokens live 15 minutes, refresh tokens 7 days. A login starts a session (the refresh-token
family): each refresh rotates the refresh token, and presenting a rotated one again means it was
stolen, so the whole session is revoked. Logout revokes the access token and its session.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol
from uuid import UUID

import jwt

from domain.errors import TaskFlowError, TokenExpired, Unauthenticated
from domain.identity import Principal
from infra.keys import KeyRing
from write_api.deps import UserClaims

LEEWAY_SECONDS = 30
VERIFIED_CACHE_SIZE = 10_000


class TokenState(Protocol):
    def start_session(self, sid: str, user_id: str, jti: str, expires_at: int) -> None: ...

    def rotate(self, sid: str, old_jti: str, new_jti: str, expires_at: int) -> str: ...

    def revoke_session(self, sid: str) -> None: ...

    def revoke_access(self, jti: str, expires_at: int) -> None: ...

    def revoke_user_sessions(self, user_id: str) -> None: ...

    async def is_revoked(self, jti: str, sid: str) -> bool:
        """Asked on every authenticated request, from the event loop: it must not block it."""


class TokenService:
    def __init__(
        self,
        keys: KeyRing,
        state: TokenState,
        *,
        issuer: str,
        audience: str,
        access_ttl: int,
        refresh_ttl: int,
        clock: Callable[[], float] = time.time,
    ):
        self.keys = keys
        self.state = state
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.clock = clock
        # RSA verification costs more than the rest of a request's auth: remember tokens whose
        # signature, issuer and audience checked out (revocation is still checked every time).
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # --- issuing -----------------------------------------------------------------------------
    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.keys.signing.private_key, algorithm="RS256", headers={"kid": self.keys.signing.kid})

    def _pair(self, user: UserClaims, sid: str, refresh_jti: str, now: int) -> dict[str, Any]:
        common = {"sub": str(user.user_id), "iss": self.issuer, "aud": self.audience, "iat": now, "sid": sid}
        access = self._sign(
            {**common, "email": user.email, "roles": list(user.roles), "exp": now + self.access_ttl,
             "jti": uuid.uuid4().hex, "typ": "access"}
        )
        refresh = self._sign({**common, "exp": now + self.refresh_ttl, "jti": refresh_jti, "typ": "refresh"})
        return {"accessToken": access, "refreshToken": refresh, "tokenType": "Bearer", "expiresIn": self.access_ttl}

    def issue(self, user: UserClaims) -> dict[str, Any]:
        now = int(self.clock())
        sid, jti = uuid.uuid4().hex, uuid.uuid4().hex
        self.state.start_session(sid, str(user.user_id), jti, now + self.refresh_ttl)
        return self._pair(user, sid, jti, now)

    def refresh(self, refresh_token: str, find_user: Callable[[UUID], UserClaims | None]) -> dict[str, Any]:
        claims = self._decode(refresh_token, "refresh")
        now = int(self.clock())
        # A revoked, expired or unknown session is refused by the rotation below.
        user = find_user(UUID(claims["sub"]))
        if user is None or not user.active:
            self.state.revoke_session(claims["sid"])
            raise Unauthenticated("user is no longer active")
        new_jti = uuid.uuid4().hex
        outcome = self.state.rotate(claims["sid"], claims["jti"], new_jti, now + self.refresh_ttl)
        if outcome == "reused":
            self.state.revoke_session(claims["sid"])
            raise Unauthenticated("refresh token was already used; the session has been revoked")
        if outcome != "rotated":
            raise Unauthenticated("refresh token has been revoked")
        return self._pair(user, claims["sid"], new_jti, now)

    # --- checking ----------------------------------------------------------------------------
    def _decode(self, token: str, expected_type: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is not None:
            # The signature was checked before; time moves on, so expiry is checked every time.
            if claims["exp"] + LEEWAY_SECONDS < self.clock():
                raise TokenExpired("token has expired")
        else:
            claims = self._verify_signature(token)
            self._verified[token] = claims
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        if claims.get("typ") != expected_type or "sid" not in claims:
            raise Unauthenticated(f"not an {expected_type} token" if expected_type == "access" else "not a refresh token")
        return claims

    def _verify_signature(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            key = self.keys.verification_key(header.get("kid"))
            if key is None:
                raise Unauthenticated("token signed with an unknown key")
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("invalid token") from None
        return claims

    def subject(self, token: str) -> str | None:
        """Whose token this is, by its signature alone (no revocation check): enough to count a
        request against its user's rate limit."""
        try:
            return str(self._decode(token, "access")["sub"])
        except TaskFlowError:
            return None

    async def verify_access(self, token: str) -> Principal:
        claims = self._decode(token, "access")
        if await self.state.is_revoked(claims["jti"], claims["sid"]):
            raise Unauthenticated("token has been revoked")
        try:
            user_id = UUID(claims["sub"])
        except ValueError:
            raise Unauthenticated("invalid token") from None
        return Principal(
            user_id=user_id,
            email=str(claims.get("email", "")),
            roles=tuple(claims.get("roles", ())),
            token_id=claims["jti"],
            session_id=claims["sid"],
            expires_at=int(claims["exp"]),
        )

    # --- revoking ----------------------------------------------------------------------------
    def logout(self, principal: Principal) -> None:
        self.state.revoke_access(principal.token_id, principal.expires_at)
        self.state.revoke_session(principal.session_id)

    def revoke_user(self, user_id: UUID) -> None:
        """Every session of the user ends: its tokens stop working (deactivation, new password)."""
        self.state.revoke_user_sessions(str(user_id))

    def jwks(self) -> dict[str, Any]:
        return self.keys.jwks()
