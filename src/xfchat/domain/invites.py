"""Invites: codes that let people join a server, with a use limit and an expiry."""

from __future__ import annotations

import secrets
import string
from typing import Any
from uuid import UUID

import asyncpg
from typing_extensions import TypedDict

from xfchat.db.queries import bans as bans_q
from xfchat.db.queries import invites as q
from xfchat.db.queries import servers as servers_q
from xfchat.domain.access import access_server, missing
from xfchat.domain.account_lock import hold_accounts
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import ServerJoinedPayload
from xfchat.domain.events import MEMBER_JOINED, SERVER_JOINED, emit
from xfchat.domain.permissions import Permission
from xfchat.domain.server_views import joined_json, member_json
from xfchat.domain.servers import audit, check_room
from xfchat.errors import BadRequest, Forbidden, NotFound

MAX_INVITES_PER_SERVER = 1000
MAX_INVITES_PER_MEMBER = 20
MAX_USES = 1000
MAX_AGE_S = 30 * 24 * 3600
CODE_LENGTH = 10
_ALPHABET = string.ascii_letters + string.digits


class InvitePayload(TypedDict):
    code: str
    server_id: str
    inviter_id: str | None
    max_uses: int | None
    uses: int
    expires_at: str | None
    created_at: str


class InvitePreview(TypedDict):
    code: str
    server: dict[str, Any]  # id, name, description, icon_url, member_count
    expires_at: str | None


def invite_json(row: q.InviteRow) -> InvitePayload:
    return {
        "code": row.code,
        "server_id": str(row.server_id),
        "inviter_id": str(row.inviter_id) if row.inviter_id else None,
        "max_uses": row.max_uses,
        "uses": row.uses,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "created_at": row.created_at.isoformat(),
    }


def invite_not_found() -> NotFound:
    return NotFound("no such invite, or it expired or was used up", code="INVITE_NOT_FOUND")


async def create_invite(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    *,
    max_uses: int | None,
    max_age_s: int | None,
    reason: str | None,
) -> InvitePayload:
    """A new invite (CREATE_INVITE): at most `max_uses` joins (1-1000; null: no limit)
    for `max_age_s` seconds (1 s to 30 days; null: no expiry).

    Raises: NotFound (SERVER_NOT_FOUND); Forbidden (MISSING_PERMISSIONS, TOO_MANY_INVITES);
    BadRequest (INVALID_INVITE)."""
    if max_uses is not None and not 1 <= max_uses <= MAX_USES:
        raise BadRequest("max_uses is 1 to 1000", code="INVALID_INVITE", field="max_uses")
    if max_age_s is not None and not 1 <= max_age_s <= MAX_AGE_S:
        raise BadRequest("max_age_s is 1 s to 30 days", code="INVALID_INVITE", field="max_age_s")
    async with conn.transaction():
        access = await access_server(
            conn, actor, server_id, need=Permission.CREATE_INVITE, lock=True
        )
        if await q.count_invites(conn, server_id=server_id) >= MAX_INVITES_PER_SERVER or (
            not access.can(Permission.MANAGE_SERVER)
            and await q.count_invites(conn, server_id=server_id, inviter_id=actor.user_id)
            >= MAX_INVITES_PER_MEMBER
        ):
            raise Forbidden(
                f"a server has at most {MAX_INVITES_PER_SERVER} usable invites, and a member"
                f" without MANAGE_SERVER {MAX_INVITES_PER_MEMBER}; revoke some",
                code="TOO_MANY_INVITES",
            )
        row = None
        while row is None:
            code = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
            row = await q.insert_invite(
                conn,
                code=code,
                server_id=server_id,
                channel_id=None,
                inviter_id=actor.user_id,
                max_uses=max_uses,
                max_age_s=max_age_s,
            )
        await audit(
            conn,
            access,
            "invite.created",
            target_type="invite",
            changes={"code": row.code, "max_uses": max_uses, "max_age_s": max_age_s},
            reason=reason,
        )
    return invite_json(row)


async def list_invites(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID
) -> list[InvitePayload]:
    """The server's invites that can still be used, newest first (MANAGE_SERVER).

    Raises: NotFound (SERVER_NOT_FOUND); Forbidden (MISSING_PERMISSIONS)."""
    await access_server(conn, actor, server_id, need=Permission.MANAGE_SERVER)
    return [invite_json(r) for r in await q.list_invites(conn, server_id=server_id)]


async def revoke_invite(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID, code: str, reason: str | None
) -> None:
    """Its creator or someone with MANAGE_SERVER revokes an invite (one expired or used
    up is gone already: INVITE_NOT_FOUND).

    Raises: NotFound (SERVER_NOT_FOUND, INVITE_NOT_FOUND); Forbidden (MISSING_PERMISSIONS)."""
    async with conn.transaction():
        access = await access_server(conn, actor, server_id, lock=True)
        found = await q.get_server_invite(conn, server_id=server_id, code=code)
        if found is None:
            raise invite_not_found()
        if found.inviter_id != actor.user_id and not access.can(Permission.MANAGE_SERVER):
            raise missing(Permission.MANAGE_SERVER, access.permissions)
        await q.delete_invite(conn, server_id=server_id, code=code)
        await audit(
            conn,
            access,
            "invite.deleted",
            target_type="invite",
            changes={"code": code},
            reason=reason,
        )


async def preview_invite(conn: asyncpg.Connection, code: str) -> InvitePreview:
    """What an invite leads to, without joining: the server's name, description, icon
    and member count.

    Raises: NotFound (INVITE_NOT_FOUND)."""
    row = await q.get_invite(conn, code=code)
    server = await servers_q.get_server(conn, server_id=row.server_id) if row else None
    if row is None or server is None:
        raise invite_not_found()
    return {
        "code": row.code,
        "server": {
            "id": str(server.id),
            "name": server.name,
            "description": server.description,
            "icon_url": server.icon_url,
            "member_count": server.member_count,
        },
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
    }


async def join_by_invite(
    conn: asyncpg.Connection, actor: Actor, code: str
) -> tuple[ServerJoinedPayload, bool]:
    """Join the server an invite leads to (a member already just gets it: False, and
    the invite is not used up).

    Raises: NotFound (INVITE_NOT_FOUND); Forbidden (BANNED, TOO_MANY_SERVERS);
    Unauthorized (SESSION_REVOKED: the account deleted meanwhile)."""
    async with conn.transaction():
        await hold_accounts(conn, actor)  # (first: domain/account_lock.py)
        row = await q.get_invite(conn, code=code)
        if row is None:
            raise invite_not_found()
        await servers_q.lock_server(conn, server_id=row.server_id)
        if await servers_q.get_member(conn, server_id=row.server_id, user_id=actor.user_id):
            server = await servers_q.get_server(conn, server_id=row.server_id)
            assert server is not None
            return await joined_json(conn, server, actor.user_id), False
        if await bans_q.is_banned(conn, server_id=row.server_id, user_id=actor.user_id):
            raise Forbidden("you are banned from this server", code="BANNED")
        await check_room(conn, actor.user_id)
        if await q.use_invite(conn, code=code) is None:
            raise invite_not_found()
        await servers_q.insert_server_member(conn, server_id=row.server_id, user_id=actor.user_id)
        member = await servers_q.get_member(conn, server_id=row.server_id, user_id=actor.user_id)
        server = await servers_q.get_server(conn, server_id=row.server_id)
        assert member is not None and server is not None
        await emit(conn, MEMBER_JOINED.to_server(server.id, await member_json(conn, member)))
        joined = await joined_json(conn, server, actor.user_id)
        await emit(conn, SERVER_JOINED.to_user(actor.user_id, joined))
    return joined, True
