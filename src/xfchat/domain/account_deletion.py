"""Deleting one's own account (POST /api/users/@me/delete), as Discord does: refused
while the account owns a server, re-authenticated like a password change (the password,
and a code when two-factor sign-in is on), and done in one transaction.

The row stays, scrubbed, so that the messages it wrote (they stay, files and all, as
on Discord) keep an author to show: a reserved placeholder username
(`deleted_user_<16 hex>`, which nobody can register), a placeholder email (so the
address may register again), a password hash no password matches, nothing else of the
person, `deleted_at` set. Everything else that names it goes in the same commit, each
as its own route would do it: every session is revoked (`session.revoked`, so its
streams close on every process), it leaves every server and group (`server.left`,
`member.removed`, voice states ended, roles and own overrides dropped; a group's owner
rule applies), its friendships, friend requests and blocks, authenticator and recovery
codes, avatar, read positions, usage days, kept timeouts and the denies that lingered
in servers it had left are deleted. Its direct
conversations stay readable by the other side, and closed to them (USER_DELETED).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import event_log as event_log_q
from xfchat.db.queries import media as media_q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import sessions as sessions_q
from xfchat.db.queries import two_factor as two_factor_q
from xfchat.db.queries import users as users_q
from xfchat.domain import (
    account_lock,
    conversations,
    friends,
    members,
    presence,
    two_factor,
    voice,
)
from xfchat.domain.access import conversations_taken_part_in, member_servers
from xfchat.domain.accounts import Actor, lock_sessions, require_live_session, session_revoked
from xfchat.domain.events import EMAIL_UPDATED, emit_many
from xfchat.domain.profile import publish_profile
from xfchat.domain.validation import DELETED_USERNAME_PREFIX
from xfchat.errors import Conflict
from xfchat.settings import Settings

# No argon2 hash looks like this, so no password ever matches it.
UNUSABLE_PASSWORD_HASH = "!deleted"  # noqa: S105 (a marker, not a secret)
DELETED_EMAIL_DOMAIN = "deleted.invalid"  # (RFC 2606: never a real address)


def placeholder_username() -> str:
    """`deleted_user_` and 16 random hex digits: 29 characters, within the username
    rule, and of the form validation.username refuses to anyone registering."""
    return f"{DELETED_USERNAME_PREFIX}_{secrets.token_hex(8)}"


def owns_servers(count: int) -> Conflict:
    return Conflict(
        f"you own {count} server{'s' if count != 1 else ''}: transfer or delete "
        f"{'them' if count != 1 else 'it'} first",
        code="OWNS_SERVERS",
    )


async def delete_account(
    pool: asyncpg.Pool, settings: Settings, actor: Actor, *, password: str, code: str | None
) -> list[UUID]:
    """Delete the actor's account (see the module's docstring). Returns the sessions it
    revoked (for the caller's cache of live sessions).

    Raises:
        BadRequest: WRONG_PASSWORD, WRONG_TWO_FACTOR_CODE (two-factor sign-in is on and
            `code` is missing, not a current code nor an unused recovery code).
        Conflict: OWNS_SERVERS. Unauthorized: SESSION_REVOKED (deleted meanwhile).
        ServiceUnavailable: TWO_FACTOR_UNAVAILABLE.
    """
    await two_factor.confirm_password(pool, settings, actor, password)
    async with pool.acquire() as conn, conn.transaction():
        places = await _lock(conn, actor.user_id)
        await require_live_session(conn, actor)
        owned = await users_q.count_owned_servers(conn, user_id=actor.user_id)
        if owned:
            raise owns_servers(owned)
        await two_factor.require_code(conn, settings, actor, code)
        return await _erase(conn, actor, places, settings.presence_timeout_s)


@dataclass(frozen=True)
class Places:
    """Where the account is, as read under the deletion's locks (each in id order)."""

    servers: list[UUID]  # those it is in, and those it left where its denies linger
    groups: list[UUID]
    directs: list[UUID]


async def _lock(conn: asyncpg.Connection, user_id: UUID) -> Places:
    """The deletion's locks, each where every other change takes it, so that none waits
    in a circle with one: the account's (first: nothing puts the account anywhere
    meanwhile, domain/account_lock.py); the rows of the servers it is in (or left, its
    denies lingering); its voice lock (after its server's, before any channel's, as a
    call's changes take it); the rows of those servers' channels and of its groups
    (before the pairs', as a group's changes take them, domain/pairs.py); the pairs' (a
    friendship, a request or a block racing this comes wholly before or after); its row
    (FOR NO KEY UPDATE: a write naming it through a foreign key goes on); its
    authenticator's row (before the sessions' lock, as the login's two-factor step takes
    them, domain/login.py); the sessions' lock (after the row, as everywhere); its
    direct conversations' rows (after the pairs', as a block takes them). All before
    anything is emitted: a send, an acknowledgement, a kick or a ban under way in one of
    those places, from another device too, may emit to a stream this writes to (the
    account's, a server's, a conversation's) while holding its place's lock; it comes
    wholly before this or waits for it, never in a circle."""
    await account_lock.lock_for_deletion(conn, user_id)
    servers = sorted(
        {
            *await member_servers(conn, user_id),
            *await servers_q.list_servers_with_member_overrides(conn, user_id=user_id),
        }
    )
    await servers_q.lock_servers(conn, server_ids=servers)
    await voice.lock_user(conn, user_id)
    groups = await conversations_taken_part_in(conn, user_id, "group")
    await channels_q.lock_channels(conn, channel_ids=groups, server_ids=servers)
    # (again under their locks: one it was taken out of meanwhile, or that ended, is
    # passed over; none can be added, the account's lock is held)
    groups = await conversations_taken_part_in(conn, user_id, "group")
    await friends.lock_relations(conn, user_id)
    await users_q.lock_user(conn, user_id=user_id)
    await two_factor_q.lock_totp(conn, user_id=user_id)
    await lock_sessions(conn, user_id)
    # (read after the pairs' locks: an acceptance of a request opens one)
    directs = await conversations_taken_part_in(conn, user_id, "direct")
    await channels_q.lock_channels(conn, channel_ids=directs, server_ids=[])
    return Places(servers, groups, directs)


async def _erase(
    conn: asyncpg.Connection, actor: Actor, places: Places, presence_timeout_s: float
) -> list[UUID]:
    """Everything of the deletion after its checks, in the caller's transaction."""
    seen = await presence.shown_now(conn, actor.user_id, presence_timeout_s)
    # Its refresh tokens' rows before its sessions' rows, as a refresh takes them
    # (domain/accounts.py): a refresh under way finishes first, or waits for this.
    await sessions_q.lock_refresh_tokens_of_user(conn, user_id=actor.user_id)
    revoked = await sessions_q.revoke_other_sessions(
        conn, user_id=actor.user_id, keep=None, reason="account_deleted"
    )
    await sessions_q.forget_session_clients(conn, user_id=actor.user_id)
    # (Its own streams close first: nothing after this reaches the account.)
    await emit_many(conn, [session_revoked(actor.user_id, s, "account_deleted") for s in revoked])
    username = placeholder_username()
    user = await users_q.scrub_deleted_user(
        conn,
        user_id=actor.user_id,
        username=username,
        email=f"{username}@{DELETED_EMAIL_DOMAIN}",
        password_hash=UNUSABLE_PASSWORD_HASH,
    )
    assert user is not None  # (its row is locked, and was not deleted)
    # The addresses it had, in its own stream's email.updated events (kept as long as the
    # log keeps events), go as its row's did.
    await event_log_q.scrub_user_stream_field(
        conn, user_id=user.id, event_type=EMAIL_UPDATED.name, field="email", value=user.email
    )
    await media_q.delete_media_of_owner(conn, owner_id=user.id, purpose="avatar")
    # Told while it still shares them: every conversation and server it is in (those
    # read under the locks).
    await publish_profile(conn, user, sorted([*places.groups, *places.directs]))
    # ... and that it went offline (its status is invisible now): its connections' end
    # after the commit changes nothing others see, so it would never be told. (Without
    # the presence lock: a status chosen takes it before the user's row, which this
    # holds, and a process's stop after its servers' rows, which this takes first.)
    await presence.announce(conn, user.id, presence_timeout_s, seen)
    # (A server or group it was kicked, banned or removed from before its lock here is
    # passed over.)
    # (and in one it had left, the denies that lingered for its rejoin go)
    await members.leave_servers_deleted(conn, user.id, places.servers)
    await conversations.leave_groups(conn, actor, places.groups)
    # Direct conversations close to the other side (sends under way check again) and
    # their calls end, the account's own included.
    events = await voice.end_states_in(conn, {user.id: places.directs})
    events += await voice.direct_access_changed(conn, places.directs)
    gone = await users_q.get_public_user(conn, user_id=user.id)
    assert gone is not None
    events += await friends.forget_relations(conn, gone)
    await emit_many(conn, events)
    await users_q.delete_personal_rows(conn, user_id=user.id)
    return revoked
