"""What a user sets on a channel, a conversation or a server they see, for their own
clients alone: mutes (domain/mutes.py) and notification settings
(domain/notification_settings.py). Both name their target alike (`channel`: a server's
text channel or a conversation, whose id is its channel's; `server`), may set one only
on what the access seam lets them see, change one user's at a time, and go when the
user leaves it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal
from uuid import UUID

import asyncpg

from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import user_targets as q
from xfchat.domain.access import (
    MESSAGE_KINDS,
    access_channel,
    access_server,
    channel_not_found,
)
from xfchat.domain.accounts import Actor
from xfchat.errors import BadRequest, NotFound

TargetKind = Literal["channel", "server"]


def kind_of(row_kind: str) -> TargetKind:
    return "server" if row_kind == "server" else "channel"


async def resolve_target(
    conn: asyncpg.Connection,
    actor: Actor,
    kind: TargetKind,
    target_id: UUID,
    *,
    lock: bool,
    refused: Callable[[], BadRequest],
) -> tuple[UUID | None, UUID | None]:
    """(channel_id, server_id) of a target the actor may see. With `lock`, a leave (or
    a kick, a ban, a removal from a group) comes wholly before the write (which is then
    refused) or after it (which deletes it): the server's row is locked, as every
    change of its members takes it, or a conversation's shared, as a removal locks it;
    a server is locked before its channel, as its other writers do.

    Raises: NotFound (CHANNEL_NOT_FOUND, SERVER_NOT_FOUND); `refused()` for a voice
    channel or a category; Unauthorized (SESSION_REVOKED: the account deleted
    meanwhile)."""
    if kind == "server":
        await access_server(conn, actor, target_id, lock=lock)
        return None, target_id
    channel = (await access_channel(conn, actor, target_id)).channel
    if lock and channel.server_id is not None:
        try:
            await access_server(conn, actor, channel.server_id, lock=True)
        except NotFound:
            raise channel_not_found() from None
        channel = (await access_channel(conn, actor, target_id)).channel  # (again, locked)
    elif lock:
        channel = (await access_channel(conn, actor, target_id, share=True)).channel
    if channel.kind not in MESSAGE_KINDS:
        raise refused()
    return target_id, None


async def lock_user(conn: asyncpg.Connection, namespace: bytes, user_id: UUID) -> None:
    """A user's rows of one kind change one at a time, so none passes its bound."""
    await locks_q.lock_transaction(conn, key=locks_q.advisory_key(namespace, user_id))


async def forget_servers(conn: asyncpg.Connection, user_id: UUID, server_ids: list[UUID]) -> None:
    """The user left these servers (or was kicked or banned): their mutes and
    notification settings of them and of their channels go (in the caller's
    transaction; `server.left` tells their sessions)."""
    await q.delete_server_targets(conn, user_id=user_id, server_ids=server_ids)


async def forget_channels(conn: asyncpg.Connection, user_id: UUID, channel_ids: list[UUID]) -> None:
    """The user left these conversations (or was removed): their mutes and notification
    settings of them go (in the caller's transaction; `conversation.removed` tells their
    sessions)."""
    await q.delete_channel_targets(conn, user_id=user_id, channel_ids=channel_ids)
