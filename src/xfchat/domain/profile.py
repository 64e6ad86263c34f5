"""What users change about themselves, and what others may see of them."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import sessions as sessions_q
from xfchat.db.queries import users as users_q
from xfchat.domain import validation
from xfchat.domain.accounts import Actor, password_hasher, session_revoked
from xfchat.domain.events import USER_UPDATED, UserPayload, emit, emit_many
from xfchat.domain.passwords import hash_password_async, verify_password_async
from xfchat.errors import BadRequest, Conflict, NotFound
from xfchat.settings import Settings

UNSET = object()


@dataclass(frozen=True)
class ProfileChanges:
    """A PATCH: fields absent stay; None clears display_name, status_text, avatar_url."""

    username: str | None = None
    display_name: str | object | None = UNSET
    status_text: str | object | None = UNSET
    avatar_url: str | object | None = UNSET


def private_profile(user: users_q.UserRow) -> UserPayload:
    """The account as its owner sees it (the body of user.updated events, too)."""
    return {
        "id": str(user.id),
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "avatar_url": user.avatar_url,
        "status_text": user.status_text,
        "created_at": user.created_at.isoformat(),
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


async def update_profile(
    conn: asyncpg.Connection, actor: Actor, changes: ProfileChanges
) -> users_q.UserRow:
    """Change username, display name, status text or avatar URL.

    Raises:
        BadRequest: a field breaks its rule. Conflict: USERNAME_TAKEN.
    """
    username = validation.username(changes.username) if changes.username is not None else None
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
    clear_avatar = changes.avatar_url is None
    avatar = None
    if isinstance(changes.avatar_url, str):
        avatar = validation.avatar_url(changes.avatar_url)
    async with conn.transaction():
        try:
            user = await users_q.update_user_profile(
                conn,
                user_id=actor.user_id,
                username=username,
                display_name=display_name,
                clear_display_name=clear_display,
                status_text=status_text,
                clear_status_text=clear_status,
                avatar_url=avatar,
                clear_avatar_url=clear_avatar,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "that username is taken", code="USERNAME_TAKEN", field="username"
            ) from None
        if user is None:
            raise NotFound("no such user", code="USER_NOT_FOUND")
        await emit(conn, USER_UPDATED.to_user(user.id, private_profile(user)))
        return user


async def change_password(
    pool: asyncpg.Pool, settings: Settings, actor: Actor, *, current: str, new: str
) -> list[UUID]:
    """Set a new password after checking the current one; every other session of the
    account is revoked. Returns the revoked session ids.

    Raises:
        BadRequest: WRONG_PASSWORD (current_password), INVALID_PASSWORD (new_password).
    """
    ph = password_hasher(settings)
    async with pool.acquire() as conn:
        user = await get_me(conn, actor)
    if not await verify_password_async(user.password_hash, current, ph):
        raise BadRequest(
            "the current password is wrong", code="WRONG_PASSWORD", field="current_password"
        )
    validation.password(new, field="new_password", user_name=user.username, user_email=user.email)
    new_hash = await hash_password_async(new, ph)
    async with pool.acquire() as conn, conn.transaction():
        await users_q.update_password_hash(conn, user_id=user.id, password_hash=new_hash)
        revoked = await sessions_q.revoke_other_sessions(
            conn, user_id=user.id, keep=actor.session_id, reason="password_changed"
        )
        await emit_many(
            conn, [session_revoked(user.id, sid, "password_changed") for sid in revoked]
        )
    return revoked
