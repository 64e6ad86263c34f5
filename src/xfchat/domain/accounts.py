"""Accounts and sessions: register, log in, refresh (rotating), log out, authenticate.

A session is one login on one device; an account has at most MAX_LIVE_SESSIONS live
at once (a login past that ends the least recently used). Its refresh tokens are
single-use: refreshing marks the presented token used and issues the next one;
presenting a used token again (after a short reuse window, in which it gets the same
pair again) means it was copied, so the whole session is revoked (theft detection).
Only a session's two newest refresh tokens are stored: an older one names its session
and generation, and is recognised by walking the HMAC chain from it to the newest
(domain/tokens.py). Access tokens are 15-minute JWTs naming their session, and every
request checks that session in the database, so revoking a session stops its access
token at once.
"""

from __future__ import annotations

import hmac
import secrets
import time
from asyncio import to_thread
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NoReturn
from uuid import UUID

import asyncpg
from argon2 import PasswordHasher

from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import sessions as sessions_q
from xfchat.db.queries import users as users_q
from xfchat.domain import validation
from xfchat.domain.events import SESSION_REVOKED, USER_UPDATED, Event, emit, emit_many
from xfchat.domain.passwords import hash_password_async, hasher
from xfchat.domain.tokens import (
    LEEWAY_S,
    MAX_REFRESH_WALK,
    AccessClaims,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
    next_refresh_token,
    parse_refresh_token,
    verify_access_token,
    walk_refresh_token,
)
from xfchat.errors import Conflict, NotFound, Unauthorized
from xfchat.settings import Settings

# Live sessions per account (README, "Accounts and sessions"): a login or registration
# that would make one more revokes the least recently used ones ('session_limit'), so
# neither the sessions list nor the rows behind it grow without end.
MAX_LIVE_SESSIONS = 100
# A replay walked over more generations than this runs in a worker thread, not on the
# event loop (about 2.5 ms of a core per thousand).
WALK_INLINE = 1_000


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
    # Sessions this login ended to stay within MAX_LIVE_SESSIONS (for the caller's cache).
    ended: tuple[UUID, ...] = ()


def password_hasher(settings: Settings) -> PasswordHasher:
    return hasher(settings.argon2_time_cost, settings.argon2_memory_kib)


@lru_cache(maxsize=4)
def dummy_hash(ph: PasswordHasher) -> str:
    # Verified against when the login names no user, so both failures cost the same.
    return ph.hash(secrets.token_urlsafe(16))


def session_revoked(user_id: UUID, session_id: UUID, reason: str) -> Event:
    return SESSION_REVOKED.to_user(user_id, {"session_id": str(session_id), "reason": reason})


def unique_violation(exc: asyncpg.UniqueViolationError) -> Conflict:
    """The conflict a unique index of users refused: EMAIL_TAKEN or USERNAME_TAKEN."""
    # (users_email_key_live: its name while migration 0034 builds it)
    if exc.constraint_name in ("users_email_key", "users_email_key_live"):
        return Conflict("that email is already registered", code="EMAIL_TAKEN", field="email")
    return Conflict("that username is taken", code="USERNAME_TAKEN", field="username")


async def claim_username_look(
    conn: asyncpg.Connection,
    username: str,
    user_id: UUID | None = None,
) -> None:
    """Until the caller's transaction ends, hold the look of `username` (a capital I as
    l, case aside: validation.username_look), and refuse it when another account's name
    has it: `aIice` beside `alice` reads as alice. (Under the lock, two registrations of
    look-alikes at once cannot both pass; the unique index keeps exact names apart.)
    A rename (of `user_id`) to the look its name has is not refused: it reads as the
    account's own name, as before, and another's name of that look (taken before the
    fold counted it) was beside it already. (Its name read under the look's lock: a
    rename of its own committed meanwhile, which let that look go, is seen.)

    Raises: Conflict (USERNAME_TAKEN)."""
    look = validation.username_look(username)
    await locks_q.lock_transaction(conn, key=locks_q.name_key(b"username-look", look))
    if user_id is not None:
        own = await users_q.get_user(conn, user_id=user_id)
        if own is not None and validation.username_look(own.username) == look:
            return
    if await users_q.username_look_taken(conn, look=look, user_id=user_id):
        raise Conflict("that username is taken", code="USERNAME_TAKEN", field="username")


async def lock_sessions(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Until the caller's transaction ends, be the only one revoking or starting the
    user's sessions in bulk (a login past MAX_LIVE_SESSIONS, a password change): two
    such updates of the same rows in different orders would deadlock. Taken after any
    lock of the user's row, as both do."""
    await locks_q.lock_transaction(conn, key=locks_q.advisory_key(b"sessions", user_id))


async def password_moved(conn: asyncpg.Connection, user_id: UUID, checked: str) -> bool:
    """Whether the account's password is no longer the one whose hash `checked` was
    checked, or the account was deleted, asked under the sessions lock (taken here,
    until the caller's transaction ends): a password change and a deletion hold it
    until they commit, having ended every other session, so either it is seen here, or
    it comes after and ends what the caller makes."""
    await lock_sessions(conn, user_id)
    return await users_q.get_password_hash(conn, user_id=user_id) != checked


async def credentials_moved(
    conn: asyncpg.Connection, user_id: UUID, checked: users_q.Credentials
) -> bool:
    """Whether the account's password, email or username is no longer the one a login
    checked (`checked`, as read before argon2 worked), or the account was deleted, asked
    under the sessions lock (taken here, until the caller's transaction ends), as
    `password_moved` asks of the password alone. A password or an email change ends
    every other session and, like a username change (which the login may have named the
    account by), holds that lock until it commits (`two_factor.reauthenticate`): so it
    is either seen here, and the login refused, or it comes after and ends what the
    caller makes. (Values, not a version: a login refused only when what it checked is
    no longer what the account has; a change and its undoing both committed meanwhile
    leave the very credentials the login proved, as a login started after would.)"""
    await lock_sessions(conn, user_id)
    return await users_q.get_credentials(conn, user_id=user_id) != checked


async def start_session(
    conn: asyncpg.Connection,
    settings: Settings,
    user: users_q.UserRow,
    client: ClientInfo,
    *,
    password_hash: str | None = None,
) -> IssuedTokens:
    """A new session for `user`, in the caller's transaction. If the account already
    has MAX_LIVE_SESSIONS live, the least recently used are revoked ('session_limit',
    each with its `session.revoked`), so it has at most that many with the new one.
    `password_hash`: the hash the password was checked against (default: the user's as
    read); an account deleted, or whose password, email or username is not the one of
    `user` any more (changed since it was read: `credentials_moved`) gets none
    (INVALID_CREDENTIALS, as a wrong password).

    From here on one login of an account at a time (`credentials_moved` takes the
    sessions lock): two at once would each see room."""
    checked = users_q.Credentials(password_hash or user.password_hash, user.email, user.username)
    if await credentials_moved(conn, user.id, checked):
        raise Unauthorized(
            "wrong username, email or password", code="INVALID_CREDENTIALS", token_error=False
        )
    ended = await sessions_q.revoke_least_recently_used_sessions(
        conn, user_id=user.id, keep=MAX_LIVE_SESSIONS - 1, reason="session_limit"
    )
    if ended:
        await emit_many(conn, [session_revoked(user.id, sid, "session_limit") for sid in ended])
    session = await sessions_q.insert_session(
        conn,
        user_id=user.id,
        user_agent=(client.user_agent or "")[:512] or None,
        ip=client.ip,
        ttl_s=settings.refresh_token_ttl_days * 86400,
    )
    token, token_hash = new_refresh_token(settings.secret.get_secret_value(), session.id)
    await sessions_q.insert_refresh_token(
        conn, token_hash=token_hash, session_id=session.id, generation=1
    )
    return replace(_issue(settings, user, session.id, token), ended=tuple(ended))


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
    ttl = settings.access_token_ttl_s
    if now is not None:  # signed as of then (a repeat in the reuse window): what is left
        ttl = max(0, min(ttl, int(int(now) + ttl - time.time())))
    return IssuedTokens(user, session_id, access, ttl, refresh)


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
    validation.check_not_everyone(display_name, field="display_name", code="INVALID_DISPLAY_NAME")
    pw_hash = await hash_password_async(password, password_hasher(settings))
    async with pool.acquire() as conn, conn.transaction():
        await claim_username_look(conn, username)
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
            raise unique_violation(exc) from None
        return await start_session(conn, settings, user, client)


async def refresh(pool: asyncpg.Pool, settings: Settings, *, refresh_token: str) -> IssuedTokens:
    """Trade a refresh token for a new access token and the next refresh token. The same
    token presented again within `refresh_reuse_window_s` of its first use (two tabs
    refreshing at once), while the pair it got is still unused, gets the very same pair
    again; otherwise it means the token was copied, and the whole session is revoked:
    for any earlier token of the session's, whether its row is still kept or not.

    Raises:
        Unauthorized: INVALID_REFRESH_TOKEN (unknown), SESSION_REVOKED (logged out, revoked
            or expired), REFRESH_TOKEN_REUSED (already used: the session is now revoked).
    """
    token_hash = hash_refresh_token(refresh_token)
    found: users_q.UserRow | None = None
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await sessions_q.get_refresh_token_for_update(conn, token_hash=token_hash)
            rotated = None if row is None else await _rotate(conn, settings, row, refresh_token)
        if rotated is not None:
            found = await users_q.get_user(conn, user_id=rotated[0].user_id)
    if row is None:
        await _check_replay(pool, settings, refresh_token)  # (raises)
    if rotated is None or found is None:  # committed above: the revocation must stick
        raise _reused()
    session, following, issued_at = rotated
    # Both answers sign the access token with the refresh token's issue time: a repeat
    # within the window gets the very same pair (the same claims, the same second).
    when = issued_at.timestamp() if issued_at is not None else None
    return _issue(settings, found, session.id, following, now=when)


def _reused() -> Unauthorized:
    return Unauthorized(
        "this refresh token was already used; the session has been revoked",
        code="REFRESH_TOKEN_REUSED",
    )


def _invalid_refresh_token() -> Unauthorized:
    return Unauthorized("the refresh token is not valid", code="INVALID_REFRESH_TOKEN")


def _check_live(session: sessions_q.SessionRow) -> None:
    if session.revoked_at is not None:
        raise Unauthorized("this session has ended; log in again", code="SESSION_REVOKED")
    if session.expires_at <= datetime.now(UTC):
        raise Unauthorized("this session has expired; log in again", code="SESSION_REVOKED")


async def _rotate(
    conn: asyncpg.Connection, settings: Settings, row: sessions_q.RefreshTokenRow, token: str
) -> tuple[sessions_q.SessionRow, str, datetime | None] | None:
    """In the caller's transaction, `token` (of `row`) used: the session, the next
    refresh token and when it was issued; None if it was reused (the session is then
    revoked)."""
    session = await sessions_q.get_session_for_update(conn, session_id=row.session_id)
    assert session is not None
    _check_live(session)
    secret = settings.secret.get_secret_value()
    following, following_hash = next_refresh_token(
        secret, token, session_id=session.id, generation=row.generation
    )
    if row.used_ago_s is not None:
        issued_at = None
        if row.used_ago_s <= settings.refresh_reuse_window_s:
            issued_at = await sessions_q.get_refresh_token_issued_at(
                conn, token_hash=following_hash, session_id=session.id
            )
        if issued_at is None:
            await _revoke_for_reuse(conn, session)
            return None
        return session, following, issued_at
    await sessions_q.mark_refresh_token_used(conn, token_hash=row.token_hash)
    issued_at = await sessions_q.insert_refresh_token(
        conn, token_hash=following_hash, session_id=session.id, generation=row.generation + 1
    )
    # Kept: the one just used (for the reuse window) and its successor. A replay of an
    # older one is still told from a forgery (_check_replay).
    await sessions_q.delete_replaced_refresh_tokens(
        conn, session_id=session.id, below=row.generation
    )
    await sessions_q.touch_session(
        conn, session_id=session.id, ttl_s=settings.refresh_token_ttl_days * 86400
    )
    return session, following, issued_at


async def _revoke_for_reuse(conn: asyncpg.Connection, session: sessions_q.SessionRow) -> bool:
    if not await sessions_q.revoke_session(conn, session_id=session.id, reason="token_reuse"):
        return False
    await emit(conn, session_revoked(session.user_id, session.id, "token_reuse"))
    return True


async def _check_replay(pool: asyncpg.Pool, settings: Settings, token: str) -> NoReturn:
    """A refresh token with no row: a forgery, or an earlier token of a live session
    whose row was deleted. A made-up one is told by its tag, at the cost of one HMAC;
    one issued here is walked along the chain to the session's newest token (a genuine
    earlier one arrives there) and revokes the session: one walk per session at most.

    Raises:
        Unauthorized: INVALID_REFRESH_TOKEN (nothing changes), SESSION_REVOKED, or
            REFRESH_TOKEN_REUSED (the session is now revoked).
    """
    secret = settings.secret.get_secret_value()
    parts = parse_refresh_token(secret, token)
    if parts is None:  # (a made-up token: its tag is not ours)
        raise _invalid_refresh_token()
    async with pool.acquire() as conn:  # (not held while the chain is walked)
        session = await sessions_q.get_session(conn, session_id=parts.session_id)
        if session is None:
            raise _invalid_refresh_token()
        _check_live(session)
        newest = await sessions_q.get_newest_refresh_token(conn, session_id=session.id)
    steps = newest.generation - parts.generation if newest is not None else 0
    if newest is None or not 0 < steps <= MAX_REFRESH_WALK:
        raise _invalid_refresh_token()
    if steps <= WALK_INLINE:
        reached = walk_refresh_token(secret, parts, steps)
    else:
        reached = await to_thread(walk_refresh_token, secret, parts, steps)
    if not hmac.compare_digest(reached, newest.token_hash):
        raise _invalid_refresh_token()
    async with pool.acquire() as conn, conn.transaction():
        revoked = await _revoke_for_reuse(conn, session)
    if not revoked:  # ended meanwhile (a logout, say)
        raise Unauthorized("this session has ended; log in again", code="SESSION_REVOKED")
    raise _reused()


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
        raise session_ended()
    return user


def session_ended() -> Unauthorized:
    return Unauthorized("this session has ended; log in again", code="SESSION_REVOKED")


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


async def revoke_other_sessions(conn: asyncpg.Connection, actor: Actor) -> list[UUID]:
    """End every session of the actor's but the one asking ("log out everywhere
    else"), at once: also one started while the asker read the list, which revoking
    them one by one would leave. Under the sessions lock, as a password change ends
    them. Returns the sessions ended."""
    async with conn.transaction():
        await lock_sessions(conn, actor.user_id)
        # (ended meanwhile: by the sessions list of another, the owner's, which this
        # one, a thief's, must not answer by ending the owner's in turn)
        asker = await sessions_q.get_session_for_update(conn, session_id=actor.session_id)
        if asker is None:
            raise session_ended()
        _check_live(asker)
        ended = await sessions_q.revoke_other_sessions(
            conn, user_id=actor.user_id, keep=actor.session_id, reason="revoked"
        )
        await emit_many(conn, [session_revoked(actor.user_id, sid, "revoked") for sid in ended])
    return ended


async def list_sessions(conn: asyncpg.Connection, actor: Actor) -> list[sessions_q.SessionRow]:
    """The actor's live sessions, newest first: at most MAX_LIVE_SESSIONS."""
    return await sessions_q.list_live_sessions(conn, user_id=actor.user_id, limit=MAX_LIVE_SESSIONS)
