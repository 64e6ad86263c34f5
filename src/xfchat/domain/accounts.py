"""Accounts and sessions: register, log in, refresh (rotating), log out, authenticate.

A session is one login on one device. Its refresh tokens are single-use: refreshing
marks the presented token used and issues the next one; presenting a used token again
(after a short reuse window, in which it gets the same pair again) means it was copied,
so the whole session is revoked (theft detection). Access tokens
are 15-minute JWTs naming their session, and every request checks that session in the
database, so revoking a session stops its access token at once.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg
from argon2 import PasswordHasher

from xfchat.db.queries import sessions as sessions_q
from xfchat.db.queries import users as users_q
from xfchat.domain import validation
from xfchat.domain.events import SESSION_REVOKED, USER_UPDATED, Event, emit
from xfchat.domain.passwords import hash_password_async, hasher
from xfchat.domain.tokens import (
    LEEWAY_S,
    AccessClaims,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
    next_refresh_token,
    verify_access_token,
)
from xfchat.errors import Conflict, NotFound, Unauthorized
from xfchat.settings import Settings


@dataclass(frozen=True)
class Actor:
    """Who is making a request: the user and the session (login) they use."""

    user_id: UUID
    session_id: UUID


@dataclass(frozen=True)
class ClientInfo:
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class IssuedTokens:
    user: users_q.UserRow
    session_id: UUID
    access_token: str
    expires_in: int
    refresh_token: str


def password_hasher(settings: Settings) -> PasswordHasher:
    return hasher(settings.argon2_time_cost, settings.argon2_memory_kib)


@lru_cache(maxsize=4)
def dummy_hash(ph: PasswordHasher) -> str:
    # Verified against when the login names no user, so both failures cost the same.
    return ph.hash(secrets.token_urlsafe(16))


def session_revoked(user_id: UUID, session_id: UUID, reason: str) -> Event:
    return SESSION_REVOKED.to_user(user_id, {"session_id": str(session_id), "reason": reason})


def _unique_violation(exc: asyncpg.UniqueViolationError) -> Conflict:
    if exc.constraint_name == "users_email_key":
        return Conflict("that email is already registered", code="EMAIL_TAKEN", field="email")
    return Conflict("that username is taken", code="USERNAME_TAKEN", field="username")


async def start_session(
    conn: asyncpg.Connection, settings: Settings, user: users_q.UserRow, client: ClientInfo
) -> IssuedTokens:
    session = await sessions_q.insert_session(
        conn,
        user_id=user.id,
        user_agent=(client.user_agent or "")[:512] or None,
        ip=client.ip,
        ttl_s=settings.refresh_token_ttl_days * 86400,
    )
    token, token_hash = new_refresh_token()
    await sessions_q.insert_refresh_token(
        conn, token_hash=token_hash, session_id=session.id, generation=1
    )
    return _issue(settings, user, session.id, token)


def _issue(
    settings: Settings,
    user: users_q.UserRow,
    session_id: UUID,
    refresh: str,
    now: float | None = None,
) -> IssuedTokens:
    access = issue_access_token(
        settings.secret.get_secret_value(),
        user_id=user.id,
        session_id=session_id,
        ttl_s=settings.access_token_ttl_s,
        now=now,
    )
    return IssuedTokens(user, session_id, access, settings.access_token_ttl_s, refresh)


async def register(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    username: str,
    email: str,
    password: str,
    display_name: str | None,
    client: ClientInfo,
) -> IssuedTokens:
    """Create an account and log it in.

    Raises:
        BadRequest: a field breaks its rule (INVALID_USERNAME, INVALID_EMAIL, INVALID_PASSWORD).
        Conflict: USERNAME_TAKEN or EMAIL_TAKEN (both case-insensitive; an email in every
            script, its canonically equivalent forms alike: validation.email_key).
    """
    validation.username(username)
    email = validation.email(email)
    validation.password(password, user_name=username, user_email=email)
    display_name = validation.optional_text(
        display_name,
        field="display_name",
        limit=validation.MAX_DISPLAY_NAME,
        code="INVALID_DISPLAY_NAME",
    )
    pw_hash = await hash_password_async(password, password_hasher(settings))
    async with pool.acquire() as conn, conn.transaction():
        try:
            user = await users_q.insert_user(
                conn,
                username=username,
                email=email,
                email_key=validation.email_key(email),
                password_hash=pw_hash,
                display_name=display_name,
            )
        except asyncpg.UniqueViolationError as exc:
            raise _unique_violation(exc) from None
        return await start_session(conn, settings, user, client)


async def refresh(pool: asyncpg.Pool, settings: Settings, *, refresh_token: str) -> IssuedTokens:
    """Trade a refresh token for a new access token and the next refresh token. The same
    token presented again within `refresh_reuse_window_s` of its first use (two tabs
    refreshing at once), while the pair it got is still unused, gets the very same pair
    again; otherwise it means the token was copied, and the whole session is revoked.

    Raises:
        Unauthorized: INVALID_REFRESH_TOKEN (unknown), SESSION_REVOKED (logged out, revoked
            or expired), REFRESH_TOKEN_REUSED (already used: the session is now revoked).
    """
    secret = settings.secret.get_secret_value()
    token_hash = hash_refresh_token(refresh_token)
    following, following_hash = next_refresh_token(secret, refresh_token)
    reused = False
    issued_at: datetime | None = None
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await sessions_q.get_refresh_token_for_update(conn, token_hash=token_hash)
            if row is None:
                raise Unauthorized("the refresh token is not valid", code="INVALID_REFRESH_TOKEN")
            session = await sessions_q.get_session_for_update(conn, session_id=row.session_id)
            assert session is not None
            if session.revoked_at is not None:
                raise Unauthorized("this session has ended; log in again", code="SESSION_REVOKED")
            if session.expires_at <= datetime.now(UTC):
                raise Unauthorized("this session has expired; log in again", code="SESSION_REVOKED")
            if row.used_ago_s is not None:
                if row.used_ago_s <= settings.refresh_reuse_window_s:
                    issued_at = await sessions_q.get_refresh_token_issued_at(
                        conn, token_hash=following_hash, session_id=session.id
                    )
                if issued_at is None:
                    await sessions_q.revoke_session(
                        conn, session_id=session.id, reason="token_reuse"
                    )
                    await emit(conn, session_revoked(session.user_id, session.id, "token_reuse"))
                    reused = True
            else:
                await sessions_q.mark_refresh_token_used(conn, token_hash=token_hash)
                issued_at = await sessions_q.insert_refresh_token(
                    conn,
                    token_hash=following_hash,
                    session_id=session.id,
                    generation=row.generation + 1,
                )
                await sessions_q.touch_session(
                    conn, session_id=session.id, ttl_s=settings.refresh_token_ttl_days * 86400
                )
            found = None if reused else await users_q.get_user(conn, user_id=session.user_id)
        if reused or found is None:  # committed above: the revocation must stick
            raise Unauthorized(
                "this refresh token was already used; the session has been revoked",
                code="REFRESH_TOKEN_REUSED",
            )
    # Both answers sign the access token with the refresh token's issue time: a repeat
    # within the window gets the very same pair (the same claims, the same second).
    when = issued_at.timestamp() if issued_at is not None else None
    return _issue(settings, found, session.id, following, now=when)


class SessionCache:
    """Sessions found live a moment ago, so that most requests skip the lookup.

    An entry is dropped when its session is revoked (the hub hears `session.revoked` from
    every process; this process also drops it itself when it does the revoking), when its
    user changes profile, when the hub's listener reconnects (it may have missed a
    revocation), and in any case after `ttl_s`. The caller uses the cache only while the
    hub is listening, so revocation reaches every process within milliseconds.
    """

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[UUID, tuple[users_q.UserRow, float]] = {}
        self._claims: dict[str, AccessClaims] = {}
        # Bumped by every forget: a lookup that started before one is not stored (it may
        # have read a session whose revocation was heard while it ran).
        self.generation = 0

    def verify(self, secret: str, token: str) -> AccessClaims:
        """verify_access_token, remembered: a token's claims never change and clients
        send the same one for 15 minutes (its expiry is still checked on every use)."""
        claims = self._claims.get(token)
        if claims is not None and claims.expires_at + LEEWAY_S > time.time():
            return claims
        claims = verify_access_token(secret, token)
        if len(self._claims) >= self.max_entries:
            self._claims.clear()
        self._claims[token] = claims
        return claims

    def get(self, session_id: UUID, user_id: UUID) -> users_q.UserRow | None:
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        user, at = entry
        if user.id != user_id or time.monotonic() - at > self.ttl_s:
            self._entries.pop(session_id, None)
            return None
        return user

    def put(self, session_id: UUID, user: users_q.UserRow, generation: int) -> None:
        if generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[session_id] = (user, time.monotonic())

    def forget_session(self, session_id: UUID | str) -> None:
        self.generation += 1
        self._entries.pop(UUID(str(session_id)), None)

    def forget_user(self, user_id: UUID | str) -> None:
        self.generation += 1
        uid = UUID(str(user_id))
        for sid in [sid for sid, (user, _) in self._entries.items() if user.id == uid]:
            del self._entries[sid]

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def observe(self, event_type: str, data: dict[str, Any]) -> None:
        """Hub hook: an event of some user's stream, from any process."""
        if event_type == SESSION_REVOKED.name:
            self.forget_session(data["session_id"])
        elif event_type == USER_UPDATED.name:
            self.forget_user(data["id"])


async def require_live_session(conn: asyncpg.Connection, actor: Actor) -> users_q.UserRow:
    """The actor's user, if their session is live (not revoked, not expired).

    Raises:
        Unauthorized: SESSION_REVOKED.
    """
    user = await sessions_q.get_live_session_user(
        conn, session_id=actor.session_id, user_id=actor.user_id
    )
    if user is None:
        raise Unauthorized("this session has ended; log in again", code="SESSION_REVOKED")
    return user


async def authenticate(
    conn: asyncpg.Connection, settings: Settings, token: str, cache: SessionCache | None = None
) -> tuple[Actor, users_q.UserRow]:
    """The actor behind an access token whose session is still live.

    Raises:
        Unauthorized: INVALID_TOKEN, TOKEN_EXPIRED or SESSION_REVOKED.
    """
    secret = settings.secret.get_secret_value()
    claims = (
        cache.verify(secret, token) if cache is not None else verify_access_token(secret, token)
    )
    actor = Actor(claims.user_id, claims.session_id)
    user = cache.get(claims.session_id, claims.user_id) if cache is not None else None
    if user is not None:
        return actor, user
    generation = cache.generation if cache is not None else 0
    user = await require_live_session(conn, actor)
    if cache is not None:
        cache.put(claims.session_id, user, generation)
    return actor, user


async def authenticate_quick(
    settings: Settings, token: str, cache: SessionCache | None, pool: asyncpg.Pool
) -> tuple[Actor, users_q.UserRow]:
    """`authenticate` that takes a connection only when the session is not cached."""
    if cache is not None:
        claims = cache.verify(settings.secret.get_secret_value(), token)
        user = cache.get(claims.session_id, claims.user_id)
        if user is not None:
            return Actor(claims.user_id, claims.session_id), user
    async with pool.acquire() as conn:
        return await authenticate(conn, settings, token, cache)


async def logout(conn: asyncpg.Connection, actor: Actor) -> None:
    """End the actor's own session."""
    await revoke_session(conn, actor, actor.session_id, reason="logout")


async def revoke_session(
    conn: asyncpg.Connection, actor: Actor, session_id: UUID, *, reason: str = "revoked"
) -> None:
    """End one of the actor's sessions (their own current one included).

    Raises:
        NotFound: SESSION_NOT_FOUND, also for another user's session.
    """
    async with conn.transaction():
        session = await sessions_q.get_session_for_update(conn, session_id=session_id)
        if session is None or session.user_id != actor.user_id:
            raise NotFound("no such session", code="SESSION_NOT_FOUND")
        if await sessions_q.revoke_session(conn, session_id=session_id, reason=reason):
            await emit(conn, session_revoked(actor.user_id, session_id, reason))


async def list_sessions(conn: asyncpg.Connection, actor: Actor) -> list[sessions_q.SessionRow]:
    return await sessions_q.list_live_sessions(conn, user_id=actor.user_id)
