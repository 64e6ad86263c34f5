"""What an operator does to an account from the command line (`xfchat admin`): end its
sessions, set a new password, lock it out.

Each is one transaction that emits `session.revoked` for every session it ends, as a
logout or a password change does: every server process hears it, drops the session
from its cache and closes its open streams at once. An `UPDATE sessions` typed by hand
emits nothing: a process keeps a session it checked for up to 30 s, and its streams
for as long as they stay open.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import sessions as sessions_q
from xfchat.db.queries import two_factor as two_factor_q
from xfchat.db.queries import users as users_q
from xfchat.domain import validation
from xfchat.domain.accounts import lock_sessions, password_hasher, session_revoked
from xfchat.domain.events import emit_many
from xfchat.domain.passwords import hash_password_async
from xfchat.errors import NotFound
from xfchat.settings import Settings


@dataclass(frozen=True)
class Ended:
    """What an operator's change ended: the account's sessions, and whether its
    two-factor sign-in was turned off."""

    user: users_q.UserRow
    sessions: list[UUID]
    two_factor_off: bool = False


async def find_account(
    conn: asyncpg.Connection, who: str, *, deleted_too: bool = False
) -> users_q.UserRow:
    """A live account by its id, username or email (as a login finds it); with
    `deleted_too`, also a deleted one named by its id (its username and email are
    placeholders now; its messages stay, and an operator may still purge them).

    Raises:
        NotFound: USER_NOT_FOUND (none, or deleted).
    """
    try:
        user = await users_q.get_user(conn, user_id=UUID(who))
    except ValueError:
        user = await users_q.get_user_by_login(conn, login=who, email_key=validation.email_key(who))
    if user is None or (user.deleted_at is not None and not deleted_too):
        raise NotFound(f"no account {who!r}", code="USER_NOT_FOUND")
    return user


async def revoke_all_sessions(pool: asyncpg.Pool, who: str) -> Ended:
    """End every live session of the account (reason `revoked`).

    Raises:
        NotFound: USER_NOT_FOUND.
    """
    async with pool.acquire() as conn, conn.transaction():
        user = await _lock(conn, who)
        return Ended(user, await _end_sessions(conn, user.id, "revoked"))


async def set_password(
    pool: asyncpg.Pool,
    settings: Settings,
    who: str,
    new: str,
    *,
    turn_off_two_factor: bool = False,
) -> Ended:
    """Give the account a new password (the rules of registration), ending every
    session (`password_changed`) and, if asked, its two-factor sign-in.

    Raises:
        NotFound: USER_NOT_FOUND. BadRequest: INVALID_PASSWORD.
    """
    async with pool.acquire() as conn:
        user = await find_account(conn, who)
    validation.password(new, user_name=user.username, user_email=user.email)
    return await _replace_password(
        pool, settings, user.id, new, "password_changed", turn_off_two_factor
    )


async def lock_account(pool: asyncpg.Pool, settings: Settings, who: str) -> Ended:
    """Lock the account out: its password becomes one nobody knows (a real hash, so a
    login takes as long as any wrong password) and every session ends (`revoked`).
    `set_password` lets it in again.

    Raises:
        NotFound: USER_NOT_FOUND.
    """
    async with pool.acquire() as conn:
        user = await find_account(conn, who)
    return await _replace_password(pool, settings, user.id, secrets.token_urlsafe(32), "revoked")


async def _replace_password(
    pool: asyncpg.Pool,
    settings: Settings,
    user_id: UUID,
    password: str,
    reason: str,
    turn_off_two_factor: bool = False,
) -> Ended:
    new_hash = await hash_password_async(password, password_hasher(settings))
    async with pool.acquire() as conn, conn.transaction():
        user = await _lock(conn, str(user_id))
        # (under the row's lock: a change of the user's own racing this waits for it,
        # then finds its checked hash moved and is refused)
        await users_q.replace_password_hash(
            conn, user_id=user.id, old_hash=user.password_hash, new_hash=new_hash
        )
        two_factor_off = False
        if turn_off_two_factor:
            two_factor_off = await two_factor_q.lock_totp(conn, user_id=user.id) is not None
            await two_factor_q.delete_totp(conn, user_id=user.id)
            await two_factor_q.delete_recovery_codes(conn, user_id=user.id)
        return Ended(user, await _end_sessions(conn, user.id, reason), two_factor_off)


async def _lock(conn: asyncpg.Connection, who: str) -> users_q.UserRow:
    """The account's row, locked (as a deletion and a password change lock it)."""
    found = await find_account(conn, who)
    user = await users_q.lock_user(conn, user_id=found.id)
    if user is None or user.deleted_at is not None:  # (deleted meanwhile)
        raise NotFound(f"no account {who!r}", code="USER_NOT_FOUND")
    return user


async def _end_sessions(conn: asyncpg.Connection, user_id: UUID, reason: str) -> list[UUID]:
    await lock_sessions(conn, user_id)
    ended = await sessions_q.revoke_other_sessions(conn, user_id=user_id, keep=None, reason=reason)
    await emit_many(conn, [session_revoked(user_id, sid, reason) for sid in ended])
    return ended
