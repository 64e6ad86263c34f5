"""What users change about themselves, and what others may see of them."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import media as media_q
from xfchat.db.queries import sessions as sessions_q
from xfchat.db.queries import users as users_q
from xfchat.domain import presence, two_factor, validation, voice
from xfchat.domain.access import (
    direct_channels_with_strangers,
    member_servers,
    visible_conversations,
)
from xfchat.domain.accounts import (
    Actor,
    claim_username_look,
    password_hasher,
    session_ended,
    session_revoked,
    unique_violation,
)
from xfchat.domain.event_payloads import PublicUserPayload
from xfchat.domain.events import EMAIL_UPDATED, PRIVACY_UPDATED, USER_UPDATED, emit, emit_many
from xfchat.domain.passwords import hash_password_async
from xfchat.domain.search_text import fold
from xfchat.errors import BadRequest, NotFound
from xfchat.settings import Settings

UNSET = object()


@dataclass(frozen=True)
class ProfileChanges:
    """A PATCH: fields absent stay; None clears display_name, status_text, avatar_url."""

    username: str | None = None
    email: str | None = None
    display_name: str | object | None = UNSET
    status_text: str | object | None = UNSET
    avatar_url: str | object | None = UNSET

    @property
    def guarded(self) -> bool:
        """Whether it names the username or the email, which only the owner changes:
        with the password (and a code with two-factor sign-in on), as a password change
        asks, so that a session alone (a stolen access token) cannot rename the account
        nor move its email away. (Needed only when one of them is changed, as judged in
        the change's transaction: one sent back as it is needs nothing.)"""
        return self.username is not None or self.email is not None


@dataclass(frozen=True)
class Proof:
    """The owner's proof for a guarded change: the user as `confirm_password` found
    it, and the code to spend (with two-factor sign-in on)."""

    checked: users_q.UserRow
    code: str | None


@dataclass(frozen=True)
class ProfileChanged:
    user: users_q.UserRow
    ended: list[UUID]  # the other sessions an email change ended (for the caller's cache)


def public_profile(user: users_q.UserRow | users_q.PublicUserRow) -> PublicUserPayload:
    """What anyone may see of a user: the body of user.updated, and every user object
    embedded in conversations, friend requests and friends. Never the custom status:
    that is presence (domain/presence.py), shown only to those who see it."""
    return {
        "id": str(user.id),
        "username": user.username,
        "display_name": user.display_name,
        "avatar_url": user.avatar_url,
        "created_at": user.created_at.isoformat(),
        "deleted": user.deleted_at is not None,
    }


async def get_me(conn: asyncpg.Connection, actor: Actor) -> users_q.UserRow:
    user = await users_q.get_user(conn, user_id=actor.user_id)
    if user is None:
        raise NotFound("no such user", code="USER_NOT_FOUND")
    return user


async def get_public_profile(conn: asyncpg.Connection, user_id: UUID) -> users_q.PublicUserRow:
    """Raises NotFound (USER_NOT_FOUND)."""
    user = await users_q.get_public_user(conn, user_id=user_id)
    if user is None:
        raise NotFound("no such user", code="USER_NOT_FOUND")
    return user


def _text_change(value: object, *, field: str, limit: int, code: str) -> tuple[str | None, bool]:
    """(new value or None to keep, whether to clear)."""
    if value is UNSET:
        return None, False
    if value is None:
        return None, True
    assert isinstance(value, str)
    return validation.optional_text(value, field=field, limit=limit, code=code), False


def password_needed() -> BadRequest:
    return BadRequest(
        "give your password to change your username or email",
        code="WRONG_PASSWORD",
        field="password",
    )


async def change_profile(
    pool: asyncpg.Pool,
    settings: Settings,
    actor: Actor,
    changes: ProfileChanges,
    *,
    password: str | None,
    code: str | None,
) -> ProfileChanged:
    """`update_profile`, with the owner's proof when the change is guarded (names the
    username or the email): the password checked here, with no connection held while
    argon2 works; the code spent in the change's transaction.

    Raises: as `update_profile` (a username or an email that breaks its rule before the
    password is checked), and BadRequest (WRONG_PASSWORD: missing or wrong)."""
    # (a name or an address that breaks its rule is told before the password is asked:
    # the rules are public, and argon2's work is not spent on a change refused anyway)
    if changes.guarded:
        async with pool.acquire() as conn:
            stored = await get_me(conn, actor)
        _identity(changes.username, stored.username, validation.username)
        _identity(changes.email, stored.email, validation.email)
    proof = None
    if changes.guarded and password is not None:
        proof = Proof(await two_factor.confirm_password(pool, settings, actor, password), code)
    async with pool.acquire() as conn:
        return await update_profile(conn, settings, actor, changes, proof)


def _identity(value: str | None, stored: str, rule: Callable[[str], str]) -> str | None:
    """A username or an email as given: None to keep it (not given, or given as it is
    stored, which one stored before its rule may be), else judged by `rule` (None if
    that makes it the stored one: surrounding spaces, say)."""
    if value is None or value == stored:
        return None
    judged = rule(value)
    return None if judged == stored else judged


async def update_profile(
    conn: asyncpg.Connection,
    settings: Settings,
    actor: Actor,
    changes: ProfileChanges,
    proof: Proof | None = None,
) -> ProfileChanged:
    """Change username, email, display name, status text or avatar URL. A change of the
    public profile is told as user.updated; a change of the status text (the custom
    status, not in the profile) as presence, as set_presence tells it; a change of the
    email (private) as email.updated to the user alone, and it ends every other session
    of the account (`session.revoked`, reason `revoked`), as a password change does.
    A guarded change (the username or the email changed: one given as it is is left
    alone, not written again) needs `proof`, spent with the change.

    Raises:
        BadRequest: a field breaks its rule (INVALID_USERNAME, INVALID_EMAIL, ...);
            WRONG_PASSWORD (no proof, or the password changed since it was checked);
            WRONG_TWO_FACTOR_CODE.
        Conflict: USERNAME_TAKEN, EMAIL_TAKEN (as registration judges them).
        Unauthorized: SESSION_REVOKED (the account was deleted meanwhile).
        ServiceUnavailable: TWO_FACTOR_UNAVAILABLE.
    """
    display_name, clear_display = _text_change(
        changes.display_name,
        field="display_name",
        limit=validation.MAX_DISPLAY_NAME,
        code="INVALID_DISPLAY_NAME",
    )
    status_text, clear_status = _text_change(
        changes.status_text,
        field="status_text",
        limit=validation.MAX_STATUS_TEXT,
        code="INVALID_STATUS_TEXT",
    )
    timeout_s = settings.presence_timeout_s
    async with conn.transaction():
        seen = None
        if changes.status_text is not UNSET:  # (locked first, as set_presence does)
            seen = await presence.lock_shown(conn, actor.user_id, timeout_s)
        current = await get_me(conn, actor)
        # (each given as it is is not written, nor judged again: a rename committed
        # meanwhile stays, and one stored before its rule is no reason to refuse)
        username = _identity(changes.username, current.username, validation.username)
        email = _identity(changes.email, current.email, validation.email)
        guarded = username is not None or email is not None
        if guarded and proof is None:
            raise password_needed()
        if username is not None:
            await claim_username_look(conn, username, actor.user_id)
        if display_name != current.display_name:  # (one stored before the rule stays)
            validation.check_not_everyone(
                display_name, field="display_name", code="INVALID_DISPLAY_NAME"
            )
        avatar_change = changes.avatar_url
        if avatar_change == current.avatar_url:
            avatar_change = UNSET  # sent back unchanged (an uploaded avatar's own path too)
        clear_avatar = avatar_change is None
        avatar = None
        if isinstance(avatar_change, str):
            avatar = validation.avatar_url(avatar_change)
        try:
            user = await users_q.update_user_profile(
                conn,
                user_id=actor.user_id,
                username=username,
                email=email,
                email_key=validation.email_key(email) if email is not None else None,
                display_name=display_name,
                clear_display_name=clear_display,
                status_text=status_text,
                clear_status_text=clear_status,
                avatar_url=avatar,
                clear_avatar_url=clear_avatar,
            )
        except asyncpg.UniqueViolationError as exc:
            raise unique_violation(exc) from None
        if user is None:  # (deleted since: its scrubbed row is not written again)
            raise session_ended()
        if guarded and proof is not None:  # (the row written first, as the password change does)
            await two_factor.reauthenticate(conn, settings, actor, proof.code, proof.checked)
        ended = []
        # (only when this request moved it: one committed meanwhile by another request,
        # which this write waited for and now sees, was ended and told by that one)
        if email is not None and user.email != current.email:
            ended = await _end_other_sessions(conn, actor, "revoked")
            await emit(conn, EMAIL_UPDATED.to_user(user.id, {"email": user.email}))
        if avatar_change is not UNSET:  # an uploaded avatar replaced by a URL: free it
            await media_q.delete_media_of_owner(conn, owner_id=user.id, purpose="avatar")
        if public_profile(user) != public_profile(current):
            await publish_profile(conn, user)
        if seen is not None and user.status_text != current.status_text:
            await presence.announce(conn, user.id, timeout_s, seen)
        return ProfileChanged(user, ended)


async def set_avatar_url(
    conn: asyncpg.Connection, actor: Actor, url: str | None
) -> users_q.UserRow:
    """Point the actor's avatar at `url`, a path this server made (an uploaded avatar,
    domain/media.py), or clear it with None; everyone who sees the user is told. Call
    inside the caller's transaction.

    Raises: Unauthorized (SESSION_REVOKED: the account was deleted meanwhile)."""
    user = await users_q.update_user_profile(
        conn, user_id=actor.user_id, avatar_url=url, clear_avatar_url=url is None
    )
    if user is None:  # (deleted since: its scrubbed row is not written again)
        raise session_ended()
    await publish_profile(conn, user)
    return user


async def publish_profile(
    conn: asyncpg.Connection, user: users_q.UserRow, conversations: list[UUID] | None = None
) -> None:
    """Tell the user's own connections, and everyone who shares a conversation or a
    server with them, that their public profile changed (in the caller's transaction):
    one event on each of those conversations and servers, so it arrives in order with
    their messages and resumes as they do. (`conversations`: those the user takes part
    in, in id order, where the caller has read them under their locks already.)"""
    shared = conversations
    if shared is None:
        visible = (await visible_conversations(conn, user.id)).values()
        shared = sorted(c.channel_id for c in visible if c.server_id is None)
    servers = await member_servers(conn, user.id)
    await emit_many(
        conn, USER_UPDATED.to_related(user.id, shared, public_profile(user), sorted(servers))
    )


async def change_password(
    pool: asyncpg.Pool,
    settings: Settings,
    actor: Actor,
    *,
    current: str,
    new: str,
    code: str | None = None,
) -> list[UUID]:
    """Set a new password after checking the current one (and, with two-factor sign-in
    on, a code, spent: a session and the password alone, a thief's, cannot lock the
    owner out, as they cannot turn it off or delete the account); every other session
    of the account is revoked. Returns the revoked session ids.

    Raises:
        BadRequest: WRONG_PASSWORD (current_password), INVALID_PASSWORD (new_password),
            WRONG_TWO_FACTOR_CODE (`code` missing, not current nor an unused recovery code).
        Unauthorized: SESSION_REVOKED (the account was deleted meanwhile).
        ServiceUnavailable: TWO_FACTOR_UNAVAILABLE.
    """
    user = await two_factor.confirm_password(pool, settings, actor, current, "current_password")
    validation.password(new, field="new_password", user_name=user.username, user_email=user.email)
    new_hash = await hash_password_async(new, password_hasher(settings))
    async with pool.acquire() as conn, conn.transaction():
        # Only over the hash the current password was checked against: a change that
        # committed meanwhile (which revoked this session if it was another's) stands.
        if not await users_q.replace_password_hash(
            conn, user_id=user.id, old_hash=user.password_hash, new_hash=new_hash
        ):
            if await users_q.get_password_hash(conn, user_id=user.id) is None:
                raise session_ended()  # (deleted since)
            raise two_factor.wrong_password("current_password")
        await two_factor.reauthenticate(conn, settings, actor, code)
        return await _end_other_sessions(conn, actor, "password_changed")


async def _end_other_sessions(conn: asyncpg.Connection, actor: Actor, reason: str) -> list[UUID]:
    """Revoke every other session of the actor's, under the sessions lock (which
    `reauthenticate` took), each with its `session.revoked`."""
    revoked = await sessions_q.revoke_other_sessions(
        conn, user_id=actor.user_id, keep=actor.session_id, reason=reason
    )
    await emit_many(conn, [session_revoked(actor.user_id, sid, reason) for sid in revoked])
    return revoked


DM_POLICIES = ("everyone", "friends")


async def get_dm_policy(conn: asyncpg.Connection, actor: Actor) -> str:
    """Whom the actor takes direct messages from (never shown to anyone else)."""
    policy = await users_q.get_dm_policy(conn, user_id=actor.user_id)
    if policy is None:
        raise NotFound("no such user", code="USER_NOT_FOUND")
    return policy


async def lock_dm_policies(conn: asyncpg.Connection, user_ids: list[UUID]) -> None:
    """Wait for any change of these users' choice of whom they take direct messages
    from (until the transaction ends): an unfriending and such a choice at once then
    come one after the other, so the later sees what the earlier closed."""
    keys = sorted(locks_q.advisory_key(b"dm-policy", u) for u in set(user_ids))
    await locks_q.lock_transaction_all(conn, keys=keys)


async def set_dm_policy(conn: asyncpg.Connection, actor: Actor, policy: str) -> str:
    """Take direct messages from everyone, or from friends only: it applies to the
    conversations open already too (those with others stay readable, not writable, and
    their calls end, for both: domain/voice.py's direct_access_changed). The choice
    held already (under the lock: one made meanwhile too) tells nothing (written as it
    is, so that a deleted account is still refused).

    Raises: BadRequest (VALIDATION_ERROR); Unauthorized (SESSION_REVOKED: the account
    deleted meanwhile)."""
    if policy not in DM_POLICIES:
        raise BadRequest(
            "direct_messages is everyone or friends",
            code="VALIDATION_ERROR",
            field="direct_messages",
        )
    async with conn.transaction():  # (your other sessions are told)
        await lock_dm_policies(conn, [actor.user_id])
        before = await users_q.get_dm_policy(conn, user_id=actor.user_id)
        if not await users_q.update_dm_policy(conn, user_id=actor.user_id, policy=policy):
            raise session_ended()  # (deleted since its session was checked)
        if before == policy:  # (made meanwhile, by a request at once: told by that one)
            return policy
        events = [PRIVACY_UPDATED.to_user(actor.user_id, {"direct_messages": policy})]
        # the conversations with non-friends open or close
        strangers = await direct_channels_with_strangers(conn, actor.user_id)
        events += await voice.direct_access_changed(conn, strangers)
        await emit_many(conn, events)
    return policy


MAX_BATCH = 100
MAX_SEARCH = 25


async def list_profiles(conn: asyncpg.Connection, user_ids: list[UUID]) -> list[PublicUserPayload]:
    """Public profiles of these users (at most MAX_BATCH), in the order asked; unknown ids
    are left out.

    Raises: BadRequest (TOO_MANY_IDS)."""
    if len(user_ids) > MAX_BATCH:
        raise BadRequest(
            f"ask for at most {MAX_BATCH} users at once", code="TOO_MANY_IDS", field="ids"
        )
    unique = list(dict.fromkeys(user_ids))
    return [public_profile(u) for u in await users_q.list_public_users(conn, user_ids=unique)]


async def search_profiles(
    conn: asyncpg.Connection, actor: Actor, prefix: str, limit: int
) -> list[PublicUserPayload]:
    """Users whose username or display name starts with `prefix`, ignoring case and
    Latin accents as message search does (search_text.fold): friends first, then
    people the actor shares a conversation with, then anyone.

    Raises: BadRequest (INVALID_QUERY)."""
    prefix = prefix.strip()
    if not 1 <= len(prefix) <= 64:
        raise BadRequest("q is 1 to 64 characters", code="INVALID_QUERY", field="q")
    if "\x00" in prefix:  # (PostgreSQL text cannot hold it)
        raise BadRequest("q must not contain the NUL character", code="INVALID_QUERY", field="q")
    limit = max(1, min(limit, MAX_SEARCH))
    found = await users_q.search_users(
        conn,
        user_id=actor.user_id,
        # (in NFC first, as the names are folded: migration 0045; `e` + U+0301 is é)
        folded=fold(unicodedata.normalize("NFC", prefix)),
        limit=limit,
    )
    return [public_profile(u) for u in found]
