"""Access tokens (short-lived signed JWTs) and refresh tokens (opaque, stored hashed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from uuid import UUID

import jwt

from xfchat.errors import Unauthorized

ALGORITHM = "HS256"
ISSUER = "xfchat"
LEEWAY_S = 5  # clock skew between server processes


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    session_id: UUID
    expires_at: int


def issue_access_token(
    secret: str, *, user_id: UUID, session_id: UUID, ttl_s: int, now: float | None = None
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": ISSUER,
        "typ": "access",
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": issued,
        "exp": issued + ttl_s,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_access_token(secret: str, token: str) -> AccessClaims:
    """Raises Unauthorized (TOKEN_EXPIRED or INVALID_TOKEN)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "sub", "sid", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized(
            "the access token has expired; refresh it", code="TOKEN_EXPIRED"
        ) from None
    except jwt.PyJWTError:
        raise Unauthorized("the access token is invalid", code="INVALID_TOKEN") from None
    if claims.get("typ") != "access":
        raise Unauthorized("the access token is invalid", code="INVALID_TOKEN")
    try:
        return AccessClaims(UUID(claims["sub"]), UUID(claims["sid"]), int(claims["exp"]))
    except (ValueError, TypeError):
        raise Unauthorized("the access token is invalid", code="INVALID_TOKEN") from None


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh opaque refresh token and the hash that is all the database keeps."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def next_refresh_token(secret: str, token: str) -> tuple[str, bytes]:
    """The refresh token that follows `token` when it is used, and its hash. It is
    derived (HMAC with the server's secret), not random, so that a repeat of the same
    refresh within the reuse window can hand out the very same pair again without the
    database ever holding a usable token."""
    key = hashlib.sha256(b"xfchat refresh tokens\0" + secret.encode()).digest()
    raw = hmac.digest(key, token.encode(), "sha256")
    following = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return following, hash_refresh_token(following)


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
