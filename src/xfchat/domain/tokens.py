"""Access tokens (short-lived signed JWTs) and refresh tokens (opaque, stored hashed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
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


def _sign(
    secret: str, kind: str, user_id: UUID, ttl_s: int, now: float | None, **claims: str
) -> str:
    """A signed token of `kind` (its `typ`: a token of one kind never passes for another)."""
    issued = int(now if now is not None else time.time())
    payload = {
        "iss": ISSUER,
        "typ": kind,
        "sub": str(user_id),
        "iat": issued,
        "exp": issued + ttl_s,
    }
    return jwt.encode({**payload, **claims}, secret, algorithm=ALGORITHM)


def issue_access_token(
    secret: str, *, user_id: UUID, session_id: UUID, ttl_s: int, now: float | None = None
) -> str:
    return _sign(secret, "access", user_id, ttl_s, now, sid=str(session_id))


def _decode(secret: str, token: str, kind: str, *required: str) -> dict[str, Any]:
    """The claims of a valid token of `kind`. Raises jwt.ExpiredSignatureError, or
    another jwt.PyJWTError (forged, malformed, or a token of another kind)."""
    claims: dict[str, Any] = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        issuer=ISSUER,
        leeway=LEEWAY_S,
        options={"require": ["exp", "iat", "sub", "iss", *required]},
    )
    if claims.get("typ") != kind:
        raise jwt.InvalidTokenError(f"not a {kind} token")
    return claims


def verify_access_token(secret: str, token: str) -> AccessClaims:
    """Raises Unauthorized (TOKEN_EXPIRED or INVALID_TOKEN)."""
    try:
        claims = _decode(secret, token, "access", "sid")
    except jwt.ExpiredSignatureError:
        raise Unauthorized(
            "the access token has expired; refresh it", code="TOKEN_EXPIRED"
        ) from None
    except jwt.PyJWTError:
        raise Unauthorized("the access token is invalid", code="INVALID_TOKEN") from None
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


TICKET_TTL_S = 300


def ticket_stamp(password_hash: str, last_step: int, codes_left: int) -> str:
    """A short fingerprint of what a ticket depends on: the password's hash (a password
    change voids the tickets issued before) and the codes accepted so far (the last time
    step, the recovery codes left: the login a ticket completes voids it, and any other
    accepted since)."""
    state = f"{password_hash}|{last_step}|{codes_left}"
    return hashlib.sha256(state.encode()).hexdigest()[:16]


def issue_two_factor_ticket(
    secret: str, *, user_id: UUID, stamp: str, now: float | None = None
) -> str:
    """What a login whose password was right, for an account with two-factor sign-in,
    gets instead of a session: proof of the password for TICKET_TTL_S, to be traded
    with a code for tokens once (`stamp`: ticket_stamp)."""
    return _sign(secret, "two_factor", user_id, TICKET_TTL_S, now, pwd=stamp)


@dataclass(frozen=True)
class TicketClaims:
    user_id: UUID
    stamp: str  # ticket_stamp when it was issued


def verify_two_factor_ticket(secret: str, ticket: str) -> TicketClaims:
    """Raises Unauthorized (INVALID_TICKET): forged, expired, or not a ticket."""
    invalid = Unauthorized(
        "the two-factor ticket is invalid or expired: log in again",
        code="INVALID_TICKET",
        token_error=False,
    )
    try:
        claims = _decode(secret, ticket, "two_factor", "pwd")
        if not isinstance(claims["pwd"], str):
            raise invalid
        return TicketClaims(UUID(claims["sub"]), claims["pwd"])
    except (jwt.PyJWTError, ValueError, TypeError):
        raise invalid from None
