"""A PATCH that would change nothing (no field, or each as it already is) answers the
object as it is and writes, audits and tells nothing, as Discord does: no
`user.updated` to every peer, no `server.updated` to every member, no audit entry of
`changes: {}`, no token of the profile rate limit.

Judged on the values as sent against the stored ones (which passed the same rules): a
value equal only once normalised (surrounding spaces, say) goes on to the update, but
for a custom status, trimmed as PUT /api/users/@me/presence judges it (the server's
update and a member's judge that again under their lock, on the values as stored, and
write nothing for it either). Here
the server's and the profile's, judged before their updates (which then judge
everything themselves); a channel's and a role's are judged inside their updates
(domain/server_channels.py, domain/roles.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import users as users_q
from xfchat.domain.access import access_server
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import ServerPayload
from xfchat.domain.permissions import Permission
from xfchat.domain.profile import UNSET, ProfileChanges, get_me
from xfchat.domain.server_views import server_json


async def unchanged_server(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID, fields: dict[str, Any]
) -> ServerPayload | None:
    """The server, if `fields` (of a PATCH) would change nothing in it and the actor
    may change it (MANAGE_SERVER); None if they would (go on with the update).

    Raises: NotFound (SERVER_NOT_FOUND); Forbidden (MISSING_PERMISSIONS), as the
    update would."""
    row = await servers_q.get_server(conn, server_id=server_id)
    if row is None or any(getattr(row, k) != v for k, v in fields.items()):
        return None
    await access_server(conn, actor, server_id, need=Permission.MANAGE_SERVER)
    return server_json(row)


async def unchanged_profile(
    conn: asyncpg.Connection, actor: Actor, changes: ProfileChanges
) -> users_q.UserRow | None:
    """The actor as they are, if `changes` would change nothing; None if they would."""
    user = await get_me(conn, actor)
    given: dict[str, object] = {
        "display_name": changes.display_name,
        "status_text": changes.status_text,
        "avatar_url": changes.avatar_url,
    }
    if changes.username is not None:
        given["username"] = changes.username
    if changes.email is not None:
        given["email"] = changes.email
    if changes.status_text not in (UNSET, None):
        # (trimmed, as the update and PUT /presence trim it: ' brb ' over 'brb' changes
        # nothing, so it is not counted in `profile` here when it is not in `presence`)
        given["status_text"] = str(changes.status_text).strip()
    if any(v is not UNSET and getattr(user, k) != v for k, v in given.items()):
        return None
    return user


async def unchanged_nickname(
    conn: asyncpg.Connection, server_id: UUID, user_id: UUID, nickname: object
) -> bool:
    """Whether `nickname` (as sent in a PATCH of the member; null or "" clear it) is the
    member's nickname already: such a PATCH writes, audits and tells nothing
    (members.update_member judges it too, on the value as it would be stored), so it is not
    counted in the `nickname` rate limit, as a profile change of nothing is not counted
    in `profile`. False for someone who is not a member (the update refuses them)."""
    member = await servers_q.get_member(conn, server_id=server_id, user_id=user_id)
    return member is not None and (nickname or None) == member.nickname
