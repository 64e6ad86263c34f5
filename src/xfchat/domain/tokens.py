"""Access tokens (short-lived signed JWTs) and refresh tokens (opaque to clients, stored
hashed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
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
    except (ValueError, TypeError, AttributeError):  # (UUID() of a list or a dict: AttributeError)
        raise Unauthorized("the access token is invalid", code="INVALID_TOKEN") from None


# A refresh token is `<session>.<generation>.<chain>.<tag>`: the session's id (its 16
# bytes, base64url), the token's generation (1 for a login's, one more at each refresh),
# 43 base64url characters (random for generation 1, then the HMAC of the token before
# it without its tag) and a tag (16 bytes of HMAC, another key, of all before it). Only
# the two newest of a live session are stored (hashed); a replay of an older one is
# told from a forgery by walking the chain forward to the stored newest. The tag makes
# a made-up token cost one HMAC, never a walk: only a genuine earlier token is walked,
# and that revokes its session. Clients treat it as opaque. Tokens issued before this
# form (43 characters, no dots) still work by their hash; their successors have it.
MAX_REFRESH_WALK = 200_000  # generations; a replay from further back is INVALID_REFRESH_TOKEN
_SESSION_PART = re.compile(r"[A-Za-z0-9_-]{22}")
_GENERATION_PART = re.compile(r"[1-9][0-9]{0,9}")
_CHAIN_PART = re.compile(r"[A-Za-z0-9_-]{43}")
_TAG_PART = re.compile(r"[A-Za-z0-9_-]{22}")
_MAX_GENERATION = 2**31 - 1  # refresh_tokens.generation is an integer


@dataclass(frozen=True)
class RefreshTokenParts:
    session_id: UUID
    generation: int
    body: str  # the token without its tag: what the next one's chain is made of


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _keys(secret: str) -> tuple[bytes, bytes]:
    """The chain's key and the tag's."""
    return (
        hashlib.sha256(b"xfchat refresh tokens\0" + secret.encode()).digest(),
        hashlib.sha256(b"xfchat refresh token tags\0" + secret.encode()).digest(),
    )


def _tagged(tag_key: bytes, body: str) -> str:
    return f"{body}.{_b64(hmac.digest(tag_key, body.encode(), 'sha256')[:16])}"


def new_refresh_token(secret: str, session_id: UUID) -> tuple[str, bytes]:
    """A new session's first refresh token (generation 1) and the hash that is all the
    database keeps."""
    token = _tagged(_keys(secret)[1], f"{_b64(session_id.bytes)}.1.{secrets.token_urlsafe(32)}")
    return token, hash_refresh_token(token)


def next_refresh_token(
    secret: str, token: str, *, session_id: UUID, generation: int
) -> tuple[str, bytes]:
    """The refresh token that follows `token` (of `generation` in `session_id`, of either
    form) when it is used, and its hash. It is derived (HMAC with the server's secret),
    not random, so that a repeat of the same refresh within the reuse window can hand
    out the very same pair again, and a replay of a token whose row is gone can be
    recognised, without the database ever holding a usable token."""
    chain_key, tag_key = _keys(secret)
    parts = parse_refresh_token(secret, token)
    body = _step(chain_key, parts.body if parts else token, _b64(session_id.bytes), generation + 1)
    following = _tagged(tag_key, body)
    return following, hash_refresh_token(following)


def _step(key: bytes, body: str, session_part: str, generation: int) -> str:
    chain = _b64(hmac.digest(key, body.encode(), "sha256"))
    return f"{session_part}.{generation}.{chain}"


def parse_refresh_token(secret: str, token: str) -> RefreshTokenParts | None:
    """The session and generation a refresh token of the self-describing form names, if
    its tag is this server's (None for any other string): it was issued here, though it
    may be long used."""
    parts = token.split(".")
    if len(parts) != 4:
        return None
    session_part, generation_part, chain_part, tag_part = parts
    if not (
        _SESSION_PART.fullmatch(session_part)
        and _GENERATION_PART.fullmatch(generation_part)
        and _CHAIN_PART.fullmatch(chain_part)
        and _TAG_PART.fullmatch(tag_part)
    ):
        return None
    body = token[: -len(tag_part) - 1]
    if not hmac.compare_digest(_tagged(_keys(secret)[1], body), token):
        return None
    raw = base64.urlsafe_b64decode(session_part + "==")
    generation = int(generation_part)
    if _b64(raw) != session_part or generation > _MAX_GENERATION:
        return None  # (not as issuance writes it)
    return RefreshTokenParts(UUID(bytes=raw), generation, body)


def walk_refresh_token(secret: str, parts: RefreshTokenParts, steps: int) -> bytes:
    """The hash of the refresh token issued `steps` refreshes after the one of `parts`,
    each built as `next_refresh_token` builds it. CPU-bound: about 2 microseconds a
    step (MAX_REFRESH_WALK of them, under half a second of a core); reached only by a
    genuine earlier token (the tag), whose walk revokes its session."""
    (chain_key, tag_key), session_part = _keys(secret), _b64(parts.session_id.bytes)
    body = parts.body
    for generation in range(parts.generation + 1, parts.generation + steps + 1):
        body = _step(chain_key, body, session_part, generation)
    return hash_refresh_token(_tagged(tag_key, body))


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


TICKET_TTL_S = 300


def ticket_stamp(password_hash: str, last_step: int, codes_left: str) -> str:
    """A short fingerprint of what a ticket depends on: the password's hash (a password
    change voids the tickets issued before) and the codes accepted so far (the last time
    step, the unused recovery codes' hashes: the login a ticket completes voids it, any
    other accepted since, and new recovery codes made since, whose count alone would
    have given a spent ticket back its stamp)."""
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
